"""``python -m model.cli``: the ``retrain`` console script."""

from model.cli import main

raise SystemExit(main())
