import sys

from quanta.scripts import main

sys.exit(main())
