"""The ``closecast`` commands, one module per group (train, serving, home), each a tuple of
``Command`` that ``flows.cli`` builds its parser from; heavy imports wait for the command."""
