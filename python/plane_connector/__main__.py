import sys

from plane_connector.cli import main

sys.exit(main())
