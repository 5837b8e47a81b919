"""vLLM's compile cache volume: StorageClass, PersistentVolume and PersistentVolumeClaim on Amazon EFS.

Statically provisioned: the EFS file system and its access point are CloudFormation resources
(cdk_constructs/compile_cache.py), and the PersistentVolume names them
(``volumeHandle: <file system id>::<access point id>``, the EFS CSI driver's format:
https://github.com/kubernetes-sigs/aws-efs-csi-driver/tree/v3.4.1/examples/kubernetes/efs/access_points).
So the driver creates nothing in AWS that ``cdk destroy`` would have to find:

* the claim names its volume (``volumeName``), and the external provisioner never provisions a
  claim that does (``shouldProvision``), nor deletes a volume whose reclaim policy is ``Retain``
  (``shouldDelete``):
  https://github.com/kubernetes-sigs/sig-storage-lib-external-provisioner/blob/v13.0.0/controller/controller.go
* the StorageClass has no ``provisioningMode``, without which the driver's CreateVolume refuses to
  create an access point ("Missing provisioningMode parameter",
  https://github.com/kubernetes-sigs/aws-efs-csi-driver/blob/v3.4.1/pkg/driver/controller.go); its
  IAM role cannot create one either (cdk_constructs/compile_cache.py).

Mounts use TLS (the driver adds ``tls`` for an access point) and IAM authorization (``iam``: the
GPU nodes' role may mount and write this file system, nothing else may). The access point makes
every file operation run as its POSIX user, whatever user the vLLM container runs as.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_35 import k8s
from constructs import Construct

from app_config.constants import COMPILE_CACHE_NAME, EFS_CSI_DRIVER, INFERENCE_NAMESPACE
from k8s_charts.common import QvllmChart, common_labels, object_meta, quantities

READ_WRITE_MANY = "ReadWriteMany"
# EFS grows with its content; Kubernetes requires a capacity on the volume and the claim, and the
# EFS CSI driver ignores it.
NOMINAL_CAPACITY = "1Gi"
MOUNT_OPTIONS = ["iam"]  # efs-utils: authorize the mount with the node's IAM role


def volume_handle(file_system_id: str, access_point_id: str) -> str:
    """The EFS CSI driver's volume id of an access point: ``<fs id>::<access point id>`` (no subpath)."""
    return f"{file_system_id}::{access_point_id}"


@dataclass(frozen=True)
class CompileCacheProps:
    """Props of :class:`CompileCacheChart`.

    Attributes:
        file_system_id: the EFS file system (``fs-...``; a CDK token at synth).
        access_point_id: its access point for the cache (``fsap-...``; a token at synth).
        namespace: namespace of the claim (the vLLM pods').
    """

    file_system_id: str
    access_point_id: str
    namespace: str = INFERENCE_NAMESPACE


class CompileCacheChart(QvllmChart):
    """StorageClass, PersistentVolume (Retain, ReadWriteMany) and the claim bound to it, all ``vllm-compile-cache``."""

    def __init__(self, scope: Construct, id: str, props: CompileCacheProps) -> None:
        super().__init__(scope, id)
        labels = common_labels(COMPILE_CACHE_NAME)
        k8s.KubeStorageClass(
            self,
            "storage-class",
            metadata=object_meta(COMPILE_CACHE_NAME, labels),
            provisioner=EFS_CSI_DRIVER,
            reclaim_policy="Retain",
            volume_binding_mode="Immediate",
        )
        capacity = quantities({"storage": NOMINAL_CAPACITY})
        k8s.KubePersistentVolume(
            self,
            "volume",
            metadata=object_meta(COMPILE_CACHE_NAME, labels),
            spec=k8s.PersistentVolumeSpec(
                capacity=capacity,
                volume_mode="Filesystem",
                access_modes=[READ_WRITE_MANY],
                persistent_volume_reclaim_policy="Retain",
                storage_class_name=COMPILE_CACHE_NAME,
                mount_options=MOUNT_OPTIONS,
                csi=k8s.CsiPersistentVolumeSource(
                    driver=EFS_CSI_DRIVER, volume_handle=volume_handle(props.file_system_id, props.access_point_id)
                ),
                # Reserved for our claim: no other claim of the class can bind it.
                claim_ref=k8s.ObjectReference(
                    api_version="v1", kind="PersistentVolumeClaim", namespace=props.namespace, name=COMPILE_CACHE_NAME
                ),
            ),
        )
        k8s.KubePersistentVolumeClaim(
            self,
            "claim",
            metadata=object_meta(COMPILE_CACHE_NAME, labels, props.namespace),
            spec=k8s.PersistentVolumeClaimSpec(
                access_modes=[READ_WRITE_MANY],
                storage_class_name=COMPILE_CACHE_NAME,
                volume_name=COMPILE_CACHE_NAME,
                resources=k8s.VolumeResourceRequirements(requests=capacity),
            ),
        )
        self._check()
