#!/usr/bin/env python3
"""Write the SBOM files the lifecycle looks for next to its binaries
(<name>.sbom.cdx.json, <name>.sbom.spdx.json, <name>.sbom.syft.json), from the Go
module build info embedded in a binary (`go version -m`).

    stacks/go-sbom.py BINARY NAME VERSION OUT_DIR
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Module:
    path: str
    version: str

    @property
    def purl(self) -> str:
        return f"pkg:golang/{self.path}@{self.version}"

    @property
    def spdx_id(self) -> str:
        safe = "".join(c if c.isalnum() or c in ".-" else "-" for c in f"{self.path}-{self.version}")
        return f"SPDXRef-Package-{safe}"


def modules(binary: Path) -> tuple[str, list[Module]]:
    out = subprocess.run(["go", "version", "-m", str(binary)], check=True, capture_output=True, text=True).stdout
    go_version = out.splitlines()[0].split(":", 1)[1].strip()
    found: dict[str, Module] = {}
    for line in out.splitlines()[1:]:
        fields = line.strip().split("\t")
        if fields[0] in ("dep", "mod") and len(fields) >= 3 and fields[2] != "(devel)":
            found[fields[1]] = Module(fields[1], fields[2])
        elif fields[0] == "=>" and len(fields) >= 3 and found:
            last = list(found)[-1]  # a replace directive applies to the module just listed
            found[last] = Module(fields[1], fields[2])
    found["stdlib"] = Module("stdlib", go_version.removeprefix("go"))
    return go_version, sorted(found.values(), key=lambda m: m.path)


def main(binary: Path, name: str, version: str, out_dir: Path) -> None:
    go_version, mods = modules(binary)
    tool = {"vendor": "OpenFunction", "name": "stacks/go-sbom.py", "version": "1"}
    cdx = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.4",
        "version": 1,
        "metadata": {"tools": [tool], "component": {"type": "application", "name": name, "version": version}},
        "components": [
            {"type": "library", "bom-ref": m.purl, "name": m.path, "version": m.version, "purl": m.purl}
            for m in mods
        ],
    }
    spdx = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{name}-{version}",
        "documentNamespace": f"https://openfunction.dev/spdx/buildpacksio-lifecycle/{name}-{version}",
        "creationInfo": {"created": "1980-01-01T00:00:01Z", "creators": ["Tool: stacks/go-sbom.py"]},
        "packages": [
            {
                "name": m.path,
                "SPDXID": m.spdx_id,
                "versionInfo": m.version,
                "downloadLocation": "NOASSERTION",
                "externalRefs": [
                    {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": m.purl}
                ],
            }
            for m in mods
        ],
    }
    syft = {
        "artifacts": [
            {"id": m.purl, "name": m.path, "version": m.version, "type": "go-module", "language": "go",
             "purl": m.purl, "metadataType": "GolangBinMetadata",
             "metadata": {"goCompiledVersion": go_version, "mainModule": "github.com/buildpacks/lifecycle"}}
            for m in mods
        ],
        "source": {"type": "file", "target": name},
        "descriptor": {"name": "stacks/go-sbom.py", "version": "1"},
        "schema": {"version": "16.0.0", "url": "https://raw.githubusercontent.com/anchore/syft/main/schema/json/schema-16.0.0.json"},
    }
    for suffix, document in (("cdx", cdx), ("spdx", spdx), ("syft", syft)):
        (out_dir / f"{name}.sbom.{suffix}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]))
