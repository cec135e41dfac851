"""``python -m chadavit``, which ``torchrun -m chadavit embed ...`` runs in every process."""

import sys

from chadavit.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
