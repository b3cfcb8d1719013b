"""``python -m serving``: the prediction API (see :mod:`serving.server`)."""

from serving.server import main

raise SystemExit(main())
