"""``keelhaul stack render``: compose and Kubernetes artifacts from the local stack's plan.

::

    settings.py   DeploySettings: public URL, storage, images, sizes (frozen)
    material.py   pure: the configs every target carries (no secret inside), Material
    compose.py    pure: compose.yaml
    k8s_objects.py pure: Kubernetes object builders (metadata, probes, volumes, policies)
    k8s.py        pure: the stack's Deployments, Services, HPA, PVC, Secrets, ConfigMaps
    monitoring.py pure: --monitoring: compose services, sidecars, annotations, scrape
                  configs, the diagnosis' tier mapping
    write.py      I/O: secret material (kept across renders), the files in OUT
"""

from __future__ import annotations

from keelhaul.stack.render.settings import DeploySettings, Images
from keelhaul.stack.render.write import Rendered, plan_for, render_deployment

__all__ = ["DeploySettings", "Images", "Rendered", "plan_for", "render_deployment"]
