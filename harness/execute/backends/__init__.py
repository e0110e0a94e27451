"""Where a run's jobs execute: ``local`` (one worker process per slot on this machine) or
``ray`` (one Ray task per job on a cluster). Both run :func:`harness.execute.worker.run_claimed`."""
