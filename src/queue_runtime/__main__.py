"""``python -m queue_runtime``: the same command as ``queue-runtime``."""

from queue_runtime.cli import main

if __name__ == "__main__":
    main()
