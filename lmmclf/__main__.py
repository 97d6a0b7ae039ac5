"""``python -m lmmclf`` runs the command line."""

from lmmclf.cli.app import main

if __name__ == "__main__":
    main()
