"""Forward-only SQL migrations, ``NNNN_name.sql``, shipped inside the package.

``server.resources.migrations`` reads them with ``importlib.resources``, so an
installed wheel migrates from any working directory. Add a new file with the next
number; never edit one that has been applied (the run refuses a changed checksum).
"""
