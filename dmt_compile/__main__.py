import sys

from dmt_compile.tools.cli import main

sys.exit(main())
