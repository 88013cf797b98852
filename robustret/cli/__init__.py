"""Layer 6, the commands: each ``python -m ...`` command's body (argument parsing, the one
boundary that turns a user's mistake into one line and exit 2) over the layers below.

May import: anything. The ``__main__`` modules of the packages below (and
``restoration.train`` / ``restoration.evaluate``) are three-line shims that call these.
"""
