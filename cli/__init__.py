"""The ``esr`` command line: thin click commands over the esrgraph library."""
