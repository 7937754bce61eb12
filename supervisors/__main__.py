import sys

from supervisors.cli import main

sys.exit(main())
