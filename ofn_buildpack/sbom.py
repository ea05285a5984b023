"""CycloneDX SBOMs of installed Python distributions, from their *.dist-info metadata.

The documents carry no timestamps or random serial numbers, so an unchanged layer gets
a byte-identical SBOM.
"""

from __future__ import annotations

import email.parser
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CYCLONEDX_SPEC_VERSION = "1.4"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    license: str

    @property
    def normalized_name(self) -> str:
        return normalize(self.name)

    @property
    def purl(self) -> str:
        return f"pkg:pypi/{self.normalized_name}@{self.version}"

    def to_metadata(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "license": self.license}

    @classmethod
    def from_metadata(cls, entry: Mapping[str, object]) -> Package:
        return cls(str(entry.get("name", "")), str(entry.get("version", "")), str(entry.get("license", "")))


@dataclass(frozen=True)
class Distribution(Package):
    """An installed package and its *.dist-info directory."""

    dist_info: Path = Path()


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(site_packages: Path) -> list[Distribution]:
    """The distributions installed in a site-packages (or --target) directory."""
    if not site_packages.is_dir():
        return []
    dists = []
    parser = email.parser.HeaderParser()
    for dist_info in sorted(site_packages.glob("*.dist-info")):
        metadata_file = dist_info / "METADATA"
        if not metadata_file.is_file():
            continue
        headers = parser.parsestr(metadata_file.read_text(encoding="utf-8", errors="replace"))
        name, version = headers.get("Name"), headers.get("Version")
        if not name or not version:
            continue
        license_text = headers.get("License-Expression") or _short_license(headers.get("License") or "")
        dists.append(Distribution(name, version, license_text, dist_info=dist_info))
    return sorted(dists, key=lambda d: d.normalized_name)


def _short_license(text: str) -> str:
    # some packages put the whole license text in the License field
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 80 else ""


def cyclonedx(dists: Iterable[Package], *, layer: str, tool_name: str, tool_version: str) -> dict[str, Any]:
    components = []
    for dist in dists:
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": dist.purl,
            "name": dist.name,
            "version": dist.version,
            "purl": dist.purl,
        }
        if dist.license:
            key = "expression" if " " in dist.license or "(" in dist.license else "license"
            component["licenses"] = (
                [{"expression": dist.license}] if key == "expression" else [{"license": {"name": dist.license}}]
            )
        components.append(component)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": CYCLONEDX_SPEC_VERSION,
        "version": 1,
        "metadata": {
            "tools": [{"vendor": "OpenFunction", "name": tool_name, "version": tool_version}],
            "component": {"type": "application", "name": layer},
        },
        "components": components,
    }
