import sys

from quanta.dashboard.server import main

sys.exit(main())
