"""Building many candidates: one job's build where a worker runs (build.py), the Dask engine that runs them
(engine.py) and the journal that lets an interrupted sweep resume (journal.py). Timing is never done here."""
