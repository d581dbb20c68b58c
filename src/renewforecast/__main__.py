"""``python -m renewforecast``: the same commands as the ``renewforecast`` script."""

from renewforecast.cli import main

if __name__ == "__main__":
    main()
