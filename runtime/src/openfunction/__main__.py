import sys

from openfunction.cli import main

sys.exit(main())
