"""What an EKS node leaves for pods (allocatable), as Karpenter and the EKS AMIs compute it.

Sources: aws/karpenter-provider-aws pkg/providers/instancetype/types.go (kube-reserved CPU: 6 % of
the first core, 1 % of the second, 0.5 % of cores 3-4, 0.25 % above; kube-reserved memory
11 MiB x max pods + 255 MiB; vmMemoryOverheadPercent 7.5 %; eviction-hard memory.available 100Mi),
the same arithmetic as awslabs/amazon-eks-ami's bootstrap.
"""

from __future__ import annotations

VM_MEMORY_OVERHEAD = 0.075  # settings.vmMemoryOverheadPercent default
EVICTION_HARD_MIB = 100  # memory.available default


def allocatable(vcpu: int, memory_gib: float, max_pods: int) -> tuple[float, float]:
    """(CPU millicores, memory MiB) allocatable on an empty node with ``vcpu`` cores and ``memory_gib`` GiB."""
    reserved_cpu = 60 + (10 if vcpu > 1 else 0) + 5 * min(max(vcpu - 2, 0), 2) + 2.5 * max(vcpu - 4, 0)
    memory = memory_gib * 1024 * (1 - VM_MEMORY_OVERHEAD) - (11 * max_pods + 255) - EVICTION_HARD_MIB
    return vcpu * 1000 - reserved_cpu, memory
