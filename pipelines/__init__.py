"""dmsec's Ray jobs, installed as the package `dmsec_pipelines` (see `dmsec.jobs`).

Each module is a thin composition of `dmsec` steps into a Ray Data / Train / Tune job, and the only
code of the project that imports Ray: `scan` (the scan's executor), `protect` (AdvDM over a
folder), `finetune` (Ray Train), `spot_tune` (Ray Tune).
"""
