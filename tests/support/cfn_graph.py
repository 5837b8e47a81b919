"""CloudFormation's create/delete dependency graph of a synthesized CDK app, read from its templates.

Order tests ask this model, not the edges we meant to add, because CloudFormation orders
resources only by what the template says:

* Resource ``A`` depends on resource ``B`` when ``A``'s ``DependsOn`` names ``B``, or ``A``'s
  ``Properties`` reference ``B`` anywhere (inside ``Fn::Join``, ``Fn::If``, lists and maps) with
  ``Ref``, ``Fn::GetAtt`` or a ``${B}`` / ``${B.Attribute}`` variable of ``Fn::Sub``
  (AWS CloudFormation User Guide: "DependsOn attribute"; "Ref"; "Fn::GetAtt"; "Fn::Sub":
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html).
  ``Ref`` of a parameter or a pseudo parameter (``AWS::Region``) and ``${!Literal}`` are no edge;
  neither is a ``Fn::Sub`` variable defined in its own variable map (its value is walked instead).
* CloudFormation creates a resource after everything it depends on and deletes it before
  everything it depends on; resources without a path between them are created and deleted in
  parallel, in no particular order. So on delete, the only resources guaranteed to outlive ``X``
  are ``X``'s (transitive) dependencies; every other resource may be deleted before ``X``
  finishes deleting (:meth:`AppGraph.may_delete_before`).
* Across stacks: ``Fn::ImportValue`` of a name another template exports (``Outputs.*.Export.Name``)
  is an edge to the resources the exported value references; CloudFormation refuses to delete an
  export while it is imported. ``cdk deploy/destroy --all`` orders whole stacks by the cloud
  assembly's stack dependencies (aws-cdk CLI 2.1148.1, ``@aws-cdk/toolkit-lib``
  ``lib/api/work-graph/build-destroy-work-graph.ts``: a stack's dependencies are destroyed after
  it), so every resource of a stack depends on every resource of the stacks it depends on.

Not modelled (none of them changes an order in this app): ``Conditions`` (every resource is
taken as present), references outside ``Properties`` (``Metadata``, ``UpdatePolicy``), and
dependencies a service adds on its own (an ENI that Lambda or a controller creates in a subnet
is not in any template; tests state those needs explicitly).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """A template references a resource, parameter or export that does not exist."""


@dataclass(frozen=True, order=True)
class ResourceId:
    """One resource of the app: its stack's name and its logical id."""

    stack: str
    logical_id: str

    def __str__(self) -> str:
        return f"{self.stack}/{self.logical_id}"


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value or [])


def _sub_names(text: str) -> Iterator[str]:
    """The variable names of a ``Fn::Sub`` string (``${!x}`` is the literal ``${x}``, no variable)."""
    for match in _SUB_VARIABLE.finditer(text):
        name = match.group(1).strip()
        if name and not name.startswith("!"):
            yield name


class AppGraph:
    """The resources of one or more templates and the dependencies CloudFormation orders them by.

    Args:
        templates: stack name -> template (dict).
        stack_dependencies: stack name -> names of the stacks it depends on (deployed before it,
            destroyed after it). Stacks not named here depend on nothing.

    Raises:
        TemplateError: a ``DependsOn``, ``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` variable or
            ``Fn::ImportValue`` names nothing that exists.
    """

    def __init__(
        self,
        templates: Mapping[str, Mapping[str, Any]],
        stack_dependencies: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.templates = dict(templates)
        self.stack_dependencies = {name: frozenset((stack_dependencies or {}).get(name, ())) for name in templates}
        for stack, deps in self.stack_dependencies.items():
            unknown = deps - set(templates)
            if unknown:
                raise TemplateError(f"stack {stack} depends on unknown stack(s) {sorted(unknown)}")
        self.resources: dict[ResourceId, Mapping[str, Any]] = {
            ResourceId(stack, logical_id): resource
            for stack, template in templates.items()
            for logical_id, resource in template.get("Resources", {}).items()
        }
        self._exports = self._read_exports()
        self._direct = {rid: self._direct_dependencies(rid) for rid in self.resources}
        self._closure: dict[ResourceId, frozenset[ResourceId]] = {}

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_assembly(cls, assembly: Any) -> AppGraph:
        """The graph of every stack of a synthesized ``CloudAssembly`` (``app.synth()``),
        with the stack order ``cdk deploy/destroy --all`` uses."""
        stacks = list(assembly.stacks)
        name_of = {stack.id: stack.stack_name for stack in stacks}
        return cls(
            {stack.stack_name: stack.template for stack in stacks},
            {
                stack.stack_name: [name_of[dep.id] for dep in stack.dependencies if dep.id in name_of]
                for stack in stacks
            },
        )

    def _read_exports(self) -> dict[str, frozenset[ResourceId]]:
        exports: dict[str, frozenset[ResourceId]] = {}
        for stack, template in self.templates.items():
            for output_name, output in template.get("Outputs", {}).items():
                name = output.get("Export", {}).get("Name")
                if name is None:
                    continue
                if not isinstance(name, str):
                    raise TemplateError(f"{stack} output {output_name}: export name is not a literal: {name!r}")
                exports[name] = frozenset(self._references(stack, output.get("Value"), where=f"output {output_name}"))
        return exports

    def _direct_dependencies(self, rid: ResourceId) -> frozenset[ResourceId]:
        resource = self.resources[rid]
        found: set[ResourceId] = set()
        for name in _as_list(resource.get("DependsOn")):
            target = ResourceId(rid.stack, name)
            if target not in self.resources:
                raise TemplateError(f"{rid}: DependsOn names unknown resource {name!r}")
            found.add(target)
        found |= self._references(rid.stack, resource.get("Properties", {}), where=str(rid))
        found.discard(rid)
        return frozenset(found)

    def _resolve_name(self, stack: str, name: str, *, where: str, local: Iterable[str] = ()) -> ResourceId | None:
        """The resource a ``Ref``/``Sub`` name points at, or ``None`` for parameters and pseudo parameters."""
        if name.startswith("AWS::") or name in local:
            return None
        if name in self.templates[stack].get("Parameters", {}):
            return None
        target = ResourceId(stack, name)
        if target not in self.resources:
            raise TemplateError(f"{where}: reference to unknown resource or parameter {name!r}")
        return target

    def _references(self, stack: str, node: Any, *, where: str) -> set[ResourceId]:
        """Every resource ``node`` references, at any depth (see the module docstring)."""
        found: set[ResourceId] = set()
        if isinstance(node, list):
            for item in node:
                found |= self._references(stack, item, where=where)
            return found
        if not isinstance(node, dict):
            return found
        if len(node) == 1:
            (key, value), = node.items()
            if key == "Ref" and isinstance(value, str):
                target = self._resolve_name(stack, value, where=where)
                return {target} if target else set()
            if key == "Fn::GetAtt":
                name = value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
                target = self._resolve_name(stack, name, where=where)
                return {target} if target else set()
            if key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for name in _sub_names(text):
                    target = self._resolve_name(stack, name.split(".", 1)[0], where=where, local=variables)
                    if target:
                        found.add(target)
                return found | self._references(stack, variables, where=where)
            if key == "Fn::ImportValue":
                if not isinstance(value, str):
                    raise TemplateError(f"{where}: Fn::ImportValue of a non-literal name {value!r}")
                if value not in self._exports:
                    raise TemplateError(f"{where}: imports {value!r}, which no template exports")
                return set(self._exports[value])
        for value in node.values():
            found |= self._references(stack, value, where=where)
        return found

    # -- queries ----------------------------------------------------------------------
    def direct_dependencies(self, rid: ResourceId) -> frozenset[ResourceId]:
        """What ``rid`` names itself (DependsOn, Ref, GetAtt, Sub, imports); no stack order."""
        return self._direct[rid]

    def _stack_closure(self, stacks: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(stacks)
        while todo:
            stack = todo.pop()
            for dep in self.stack_dependencies[stack]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    def dependencies(self, rid: ResourceId) -> frozenset[ResourceId]:
        """Everything CloudFormation creates before ``rid`` and deletes after it (transitive,
        across stacks, with the app's stack order)."""
        if rid in self._closure:
            return self._closure[rid]
        seen: set[ResourceId] = set()
        todo = list(self._direct[rid])
        expanded: set[str] = set()
        while True:
            while todo:
                current = todo.pop()
                if current not in seen:
                    seen.add(current)
                    todo.extend(self._direct[current])
            # A reached resource's stack (or rid's own) depends on these stacks: all of them outlive rid.
            new_stacks = self._stack_closure({r.stack for r in seen} | {rid.stack}) - expanded
            if not new_stacks:
                break
            expanded |= new_stacks
            todo.extend(other for other in self.resources if other.stack in new_stacks)
        if rid in seen:
            raise TemplateError(f"{rid} depends on itself (circular dependency)")
        self._closure[rid] = frozenset(seen)
        return self._closure[rid]

    def dependents(self, rid: ResourceId) -> frozenset[ResourceId]:
        """Everything CloudFormation deletes before it starts deleting ``rid``."""
        return frozenset(other for other in self.resources if rid in self.dependencies(other))

    def depends_on(self, dependent: ResourceId, dependency: ResourceId) -> bool:
        """``dependency`` is created before ``dependent`` and deleted only after it is gone."""
        return dependency in self.dependencies(dependent)

    def may_delete_before(self, rid: ResourceId) -> frozenset[ResourceId]:
        """Every resource CloudFormation may delete before ``rid`` finishes deleting: all but
        ``rid``'s dependencies (and ``rid`` itself)."""
        keep = self.dependencies(rid)
        return frozenset(other for other in self.resources if other != rid and other not in keep)

    def path(self, dependent: ResourceId, dependency: ResourceId) -> list[ResourceId] | None:
        """One chain of direct edges from ``dependent`` to ``dependency`` (for messages), or
        ``None`` when only the stack order (or nothing) links them."""
        parents: dict[ResourceId, ResourceId] = {}
        todo = [dependent]
        seen = {dependent}
        while todo:
            current = todo.pop(0)
            if current == dependency:
                chain = [current]
                while chain[-1] in parents:
                    chain.append(parents[chain[-1]])
                return chain[::-1]
            for nxt in sorted(self._direct[current]):
                if nxt not in seen:
                    seen.add(nxt)
                    parents[nxt] = current
                    todo.append(nxt)
        return None

    def of_type(self, resource_type: str, stack: str | None = None) -> list[ResourceId]:
        """The resources of one CloudFormation type (optionally of one stack), sorted."""
        return sorted(
            rid for rid, resource in self.resources.items()
            if resource.get("Type") == resource_type and (stack is None or rid.stack == stack)
        )
