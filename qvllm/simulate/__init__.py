"""`qvllm simulate`: replay load through the scaling path the product deploys, and price it.

Modules: :mod:`~qvllm.simulate.workload` (traces and generated profiles),
:mod:`~qvllm.simulate.engine` (one replica's service curve), :mod:`~qvllm.simulate.cluster`
(the replay: gateway, replicas, :class:`qvllm.scaling.ControlLoop`, pods, nodes),
:mod:`~qvllm.simulate.report` (percentiles, SLO, GPU-hours, cost, the plot) and
:mod:`~qvllm.simulate.calibrate` (measure a real engine's curve, replay load against it).
The cold-start model is :mod:`app_config.cold_start`.
"""
