"""Cluster stack: EKS, its add-ons (Karpenter, KEDA + OTel scaler add-on, load balancer controller,
metrics-server) and our cdk8s charts, with explicit apply/delete ordering.

Apply order (CloudFormation creates along dependencies, deletes in reverse):

    cluster + system node group + core add-ons
    + what Karpenter's nodes use (node security group and its rules, the cluster-group rule
      admitting them, node role, node access entry, interruption queue and rules)
      -> teardown cleanup custom resource
        -> LB controller -> controllers: Karpenter (CRDs, then controller), KEDA, OTel add-on, metrics-server
          -> namespaces -> NetworkPolicies (after the OTel add-on: one sits in its namespace)
                        -> NodePools/EC2NodeClasses -> vLLM -> ScaledObject
                                                    -> warm headroom placeholders
                                                    -> gateway (+ TargetGroupBinding)
                        -> OTel collector
             (vLLM, gateway and collector after the NetworkPolicies: their pods start confined)
    + compile cache (EFS file system, access point, mount targets, node mount policy, EFS CSI add-on)
      -> compile cache volume and claim -> vLLM

So ``cdk destroy`` deletes our workloads while the controllers still run (they clean up the EC2
instances and target registrations they made; the vLLM pods and the compile cache claim go before
the file system, its mount targets and the CSI driver that unmounts it), then the controllers, then the cleanup resource
(which removes whatever the controllers left for this cluster), then what the nodes used, the
node group, the cluster, and, in the network stack, the VPC. tests/stacks/test_destroy_order.py
checks this on CloudFormation's own dependency graph of the synthesized app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import cdk8s
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct, IConstruct

from app_config import AppConfig, versions
from app_config.constants import INFERENCE_NAMESPACE, VLLM_NAME
from app_config.images import ImageSource
from cdk_constructs.compile_cache import CompileCache, CompileCacheProps
from cdk_constructs.controller_cleanup import ControllerCleanup, ControllerCleanupProps
from cdk_constructs.eks_cluster import EksCluster, EksClusterProps
from cdk_constructs.image_cache import ImageCache, ImageCacheProps, registry_host
from cdk_constructs.karpenter import Karpenter, KarpenterProps
from cdk_constructs.keda import Keda, KedaProps, keda_pin
from cdk_constructs.metrics_server import MetricsServer, MetricsServerProps
from cdk_constructs.model_store import ModelStore
from cdk_constructs.nag import acknowledge_wildcard_resources
from cdk_constructs.pod_identity_role import PodIdentityRole, PodIdentityRoleProps
from k8s_charts import DeployValues, chart_props

REPO_ROOT = Path(__file__).resolve().parents[1]
GATEWAY_DOCKERFILE = "docker/gateway/Dockerfile"  # relative to the build context (the repo root)
GATEWAY_IMAGE_PLATFORM = ecr_assets.Platform.LINUX_AMD64  # GatewayProps.image_architectures defaults to amd64 to match


def helm_chart_pins(config: AppConfig) -> tuple[versions.HelmChartPin, ...]:
    """Every Helm chart this stack installs (for the README table)."""
    return (
        versions.KARPENTER_CRD,
        versions.KARPENTER,
        keda_pin(config.scaling.keda_flavor),
        versions.OTEL_ADDON,
        versions.METRICS_SERVER,
        versions.AWS_LOAD_BALANCER_CONTROLLER,
    )


@dataclass(frozen=True)
class Workloads:
    """The embedded cdk8s charts (each a ``KubernetesManifest``), by role."""

    namespaces: eks.KubernetesManifest
    network_policies: eks.KubernetesManifest
    nodepools: eks.KubernetesManifest
    vllm: eks.KubernetesManifest
    scaled_object: eks.KubernetesManifest
    gateway: eks.KubernetesManifest
    collector: eks.KubernetesManifest
    compile_cache: eks.KubernetesManifest | None = None
    warm_headroom: eks.KubernetesManifest | None = None

    def all(self) -> tuple[eks.KubernetesManifest, ...]:
        optional = tuple(m for m in (self.compile_cache, self.warm_headroom) if m is not None)
        return (
            self.namespaces, self.network_policies, self.nodepools, self.vllm, self.scaled_object, self.gateway,
            self.collector, *optional,
        )


class ClusterStack(cdk.Stack):
    """The EKS cluster with everything that runs in it.

    Exposes ``eks`` (:class:`EksCluster`), ``cluster``, ``karpenter``, ``keda``,
    ``metrics_server``, ``vllm_identity`` (the vLLM Pod Identity role), ``gateway_image``,
    ``controllers`` (constructs the workloads wait on), ``workloads`` and ``cleanup``
    (the teardown custom resource, or ``None`` when disabled/unavailable), ``image_cache`` (the
    ECR pull-through cache rules, or ``None`` with ``images.pull_through_cache: false``),
    ``compile_cache`` (vLLM's compile cache on EFS, or ``None`` with ``vllm.compile_cache.enabled: false``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        vpc: Any,
        model_store: ModelStore,
        edge: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="qvllm: EKS cluster, Karpenter, KEDA + OTel scaler, LB controller, vLLM and gateway",
            **kwargs,
        )
        name = config.cluster_name

        # Every image of a public registry is pulled through the deploy region's ECR caches.
        images = ImageSource(registry_host(self) if config.images.pull_through_cache else None, config.project_name)
        self.eks = EksCluster(
            self,
            "Eks",
            EksClusterProps(
                config=config.cluster,
                cluster_name=name,
                vpc=vpc,
                alb_controller_repository=images.repository(versions.AWS_LOAD_BALANCER_CONTROLLER_IMAGE_REPOSITORY),
            ),
        )
        cluster = self.cluster = self.eks.cluster

        self.karpenter = Karpenter(
            self,
            "Karpenter",
            KarpenterProps(
                cluster=cluster,
                cluster_name=name,
                controller_image_repository=images.repository(versions.KARPENTER_CONTROLLER_IMAGE_REPOSITORY),
            ),
        )
        self.keda = Keda(self, "Keda", KedaProps(cluster=cluster, flavor=config.scaling.keda_flavor))
        self.metrics_server = MetricsServer(
            self,
            "MetricsServer",
            MetricsServerProps(
                cluster=cluster, image_repository=images.repository(versions.METRICS_SERVER_IMAGE_REPOSITORY)
            ),
        )
        # The cache rules and the node roles' right to fill them exist before any release pulls.
        self.image_cache: ImageCache | None = None
        if config.images.pull_through_cache:
            self.image_cache = ImageCache(
                self,
                "ImageCache",
                ImageCacheProps(
                    project_name=config.project_name,
                    docker_hub_secret=config.images.docker_hub_secret,
                    node_roles=(self.eks.system_nodegroup.role, self.karpenter.node_role),
                ),
            )
        helm_controllers: tuple[IConstruct, ...] = (
            self.karpenter.crd_chart,
            self.karpenter.chart,
            self.keda.keda_chart,
            self.keda.otel_addon_chart,
            self.metrics_server.chart,
        )
        for chart in helm_controllers:
            # Controllers run on the system nodes and resolve names through CoreDNS (the load
            # balancer controller is wired to them by EksCluster).
            chart.node.add_dependency(self.eks.system_nodegroup)
            chart.node.add_dependency(self.eks.addons["coredns"])
            # After the load balancer controller: no release creates a Service while its webhooks
            # are registered but not yet served.
            chart.node.add_dependency(self.eks.alb_controller)
        if self.image_cache is not None:
            self.eks.alb_controller.node.add_dependency(self.image_cache)
        self.controllers: tuple[IConstruct, ...] = (*helm_controllers, self.eks.alb_controller)

        self.cleanup = self._teardown_cleanup(config)
        # Karpenter's nodes (and their pods' ENIs) use these until the last node is terminated;
        # nothing the template knows of uses them, so CloudFormation would delete them at the
        # very start of `cdk destroy` (DependencyViolation on the node group while nodes run).
        # They go only after the cleanup (or, without it, Karpenter) is gone.
        anchor = self.cleanup.resource if self.cleanup else self.karpenter.chart
        for dependency in (*self.eks.node_dependencies, *self.karpenter.node_dependencies):
            anchor.node.add_dependency(dependency)

        self.vllm_identity = PodIdentityRole(
            self,
            "VllmIdentity",
            PodIdentityRoleProps(
                cluster=cluster,
                namespace=INFERENCE_NAMESPACE,
                service_account=VLLM_NAME,
                description=f"vLLM pods of EKS cluster {name}: read the model prefix only",
            ),
        )
        model_store.grant_read_model(self.vllm_identity.role)
        acknowledge_wildcard_resources(
            self.vllm_identity.role.node.find_child("DefaultPolicy"),
            "The only wildcard is the model prefix itself (s3://<bucket>/models/<name>/*): vLLM streams "
            "every weight file under it; ListBucket is limited to that prefix by an s3:prefix condition.",
        )

        # vLLM's torch.compile cache, shared by every vLLM pod (mounted by Karpenter's GPU nodes).
        self.compile_cache: CompileCache | None = None
        if config.vllm.compile_cache.enabled:
            self.compile_cache = CompileCache(
                self,
                "CompileCache",
                CompileCacheProps(
                    cluster=cluster,
                    cluster_name=name,
                    vpc=vpc,
                    node_security_group=self.eks.node_security_group,
                    node_role=self.karpenter.node_role,
                    system_nodegroup=self.eks.system_nodegroup,
                ),
            )

        self.gateway_image = ecr_assets.DockerImageAsset(
            self,
            "GatewayImage",
            directory=str(REPO_ROOT),
            file=GATEWAY_DOCKERFILE,
            platform=GATEWAY_IMAGE_PLATFORM,
        )

        self.workloads = self._embed_charts(config, model_store=model_store, edge=edge, vpc=vpc)

        cdk.CfnOutput(self, "ClusterName", value=cluster.cluster_name)
        cdk.CfnOutput(self, "KarpenterInterruptionQueueName", value=self.karpenter.queue.queue_name)
        cdk.CfnOutput(self, "VllmRoleArn", value=self.vllm_identity.role.role_arn)

    # ------------------------------------------------------------------------------
    def _teardown_cleanup(self, config: AppConfig) -> ControllerCleanup | None:
        """The cleanup custom resource (it removes what Karpenter and the load balancer controller made), ordered between the controllers and the cluster.

        It must be *created* after the cluster and the system node group and *deleted* before
        them, but after every controller: so it depends on the cluster resource and the node
        group, and every controller depends on it. (It depends on the CfnCluster, not on the
        Cluster construct, whose subtree also holds the charts: that would be a cycle.)
        """
        if not config.teardown.cleanup_controller_resources:
            return None
        cleanup = ControllerCleanup(
            self,
            "ControllerCleanup",
            ControllerCleanupProps(
                cluster_name=config.cluster_name,
                cluster=self.cluster,
                vpc=self.cluster.vpc,
                node_role=self.karpenter.node_role,
                config=config.teardown,
            ),
        )
        cluster_resource = self.cluster.node.default_child
        assert cluster_resource is not None
        cleanup.node.add_dependency(cluster_resource)
        cleanup.node.add_dependency(self.eks.system_nodegroup)
        for controller in self.controllers:
            controller.node.add_dependency(cleanup)
        return cleanup

    # ------------------------------------------------------------------------------
    def _embed_charts(self, config: AppConfig, *, model_store: ModelStore, edge: Any, vpc: Any) -> Workloads:
        """Render our cdk8s charts and apply them with explicit dependencies."""
        cluster = self.cluster
        app = cdk8s.App()

        def add(construct_id: str, chart: cdk8s.Chart, *after: IConstruct) -> eks.KubernetesManifest:
            manifest = cluster.add_cdk8s_chart(construct_id, chart)
            for dependency in after:
                manifest.node.add_dependency(dependency)
            return manifest

        karpenter, keda = self.karpenter, self.keda
        # One source of chart props for the stack and for `make manifests`: k8s_charts.chart_props.
        specs = chart_props(
            config,
            DeployValues(
                model_uri=model_store.model_uri,
                region=self.region,
                cluster_name=config.cluster_name,
                node_role_name=karpenter.node_role.role_name,
                vllm_service_account_name=VLLM_NAME,
                gateway_image_uri=self.gateway_image.image_uri,
                target_group_arn=edge.target_group.target_group_arn,
                alb_security_group_id=edge.alb_security_group.security_group_id,
                vpc_id=vpc.vpc_id,
                image_registry=registry_host(self),
                compile_cache_file_system_id=self.compile_cache.file_system.file_system_id if self.compile_cache else None,
                compile_cache_access_point_id=self.compile_cache.access_point.access_point_id if self.compile_cache else None,
            ),
        )

        def chart(key: str) -> cdk8s.Chart:
            spec = specs[key]
            return spec.chart_class(app, key.replace("_", "-"), spec.props)

        namespaces = add("NamespacesManifest", chart("namespaces"))
        # NetworkPolicies: one sits in the add-on's namespace, which its Helm release creates.
        network_policies = add("NetworkPoliciesManifest", chart("network_policies"), namespaces, keda.otel_addon_chart)
        # NodePools/EC2NodeClasses: after the Karpenter chart (CRDs + controller) and its node role's access entry.
        nodepools = add(
            "NodePoolsManifest",
            chart("karpenter_nodepools"),
            karpenter.crd_chart,
            karpenter.chart,
            karpenter.node_access_entry,
        )
        # Compile cache volume and claim: after the file system, its mount targets and access point,
        # the nodes' mount policy and the CSI driver (the whole construct); deleted before all of them.
        compile_cache = None
        if self.compile_cache is not None:
            compile_cache = add("CompileCacheManifest", chart("compile_cache"), namespaces, self.compile_cache)
        # vLLM: deleted before the NodePools (pods go before the nodes), bound to its Pod Identity role;
        # deleted before the compile cache claim, whose deletion then waits for the pods to be gone.
        vllm = add(
            "VllmManifest",
            chart("vllm"),
            namespaces,
            network_policies,
            nodepools,
            self.vllm_identity.association,
            *([compile_cache] if compile_cache else []),
        )
        # Warm headroom placeholders: on the GPU NodePool, so deleted before it.
        warm_headroom = None
        if "warm_headroom" in specs:
            warm_headroom = add("WarmHeadroomManifest", chart("warm_headroom"), namespaces, nodepools)
        # ScaledObject: after KEDA (CRD + admission webhook) and the add-on it asks for metrics.
        scaled_object = add(
            "ScaledObjectManifest", chart("scaled_object"), namespaces, vllm, keda.keda_chart, keda.otel_addon_chart
        )
        # Gateway + TargetGroupBinding: after the load balancer controller (CRD + webhook).
        gateway = add(
            "GatewayManifest", chart("gateway"), namespaces, network_policies, nodepools, self.eks.alb_controller
        )
        # Collector: forwards every metric the ScaledObject's triggers query (k8s_charts.scaler_metrics).
        collector = add(
            "OtelCollectorManifest", chart("otel_collector"), namespaces, network_policies, keda.otel_addon_chart
        )
        workloads = Workloads(
            namespaces=namespaces,
            network_policies=network_policies,
            nodepools=nodepools,
            vllm=vllm,
            scaled_object=scaled_object,
            gateway=gateway,
            collector=collector,
            compile_cache=compile_cache,
            warm_headroom=warm_headroom,
        )
        # Teardown: every workload manifest goes before every controller.
        for manifest in workloads.all():
            for controller in self.controllers:
                manifest.node.add_dependency(controller)
        return workloads
