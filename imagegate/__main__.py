"""`python -m imagegate`: the `imagegate` command, also how `serve --processes N` starts its
server processes (the same interpreter, wherever the console script lives)."""

from imagegate.cli import main

if __name__ == "__main__":
    main()
