"""SPOT: causal discovery with latent confounders (docs/methods/spot.md).

Modules, one idea each: `graphs` (mixed-graph encoding and queries), `simulate` (linear SEM data
from Erdos-Renyi / scale-free DAGs with hidden variables, true MAG/PAG, varsortability),
`protocol` (the benchmark's generator families and disjoint tuning / reporting splits), `pag`
(MAG -> PAG), `metrics`, `features` and `posterior` / `posterior_train` (phase 1: the skeleton
posterior), `objective`, `solvers` and `learner` (the differentiable MAG learner), `spot`
(phase 2: posterior-guided learning), `table` (Parquet in, graph out), `baselines` (FCI) and
`cli`. Nothing here imports Ray; `pipelines/spot_tune.py` does the hyper-parameter search.
"""
