"""Many candidates: one candidate's build where a worker runs (build.py), the Dask engine that runs the builds
(engine.py) and the journal that lets an interrupted sweep resume (journal.py); the candidates timed on the
devices they are for (on_devices.py: one device or a fleet, never a build worker); several models' Pareto front
(pareto.py) and its report (report.py)."""
