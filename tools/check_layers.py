#!/usr/bin/env python3
"""Fail when a module imports across the layer rules in ARCHITECTURE.md.

Layers, lowest first (a module may use its own layer and the ones below it, never above):
  kernel            errors, clock, SigV4, models/router/input, responses, store runner
  sandbox           backends (Docker, microVM): see only a SandboxSpec
  services/*/tables each service's rows and queries
  services/* domain each service's logic (everything in a service folder that is not wire or tables)
  sessions          the live-session table: the only door to a sandbox
  services/runtime/prepare   version preparation (jobs and images through sessions)
  app, config       the shared application state, the caller's authentication, configuration
  services/* wire   routes and wire shapes (`api` / `*_api` modules)
  front_door, console, server, main, cli, fuzzing (the fuzz targets drive parsers of every layer)
Besides the order:
  - a backend imports nothing from sessions, services or the store;
  - a service's wire or domain never imports another service's tables or wire;
  - only sessions (and the version preparation's job and image calls through it) reach a backend:
    nothing above sessions imports crate::sandbox except the value types listed in SANDBOX_TYPES.
Run from the repository root: python3 tools/check_layers.py
"""
import os
import re
import sys

SRC = "src"
RANK = {"kernel": 0, "sandbox": 1, "tables": 2, "domain": 3, "sessions": 4, "prepare": 4.2, "app": 4.5, "wire": 5,
        "top": 6}
# Top-level modules that are not layers of their own: leaves (kernel rank) or the application.
# Any other top-level module (front_door, console, server, fuzzing, ...) is "top": `fuzzing` calls
# parsers of every layer, as the front door does, and nothing but the fuzz crate calls it.
TOP_LEVEL = {"observe": "kernel", "config": "app", "app": "app"}
# The composition root builds the backend it hands to sessions.
COMPOSITION_ROOT = {"src/server.rs", "src/main.rs"}
# Types from crate::sandbox that higher layers may name (plain data, no backend access).
SANDBOX_TYPES = {"Limits", "Mount", "labels", "SandboxError", "Exec", "ExecOutput", "SandboxStats", "Egress"}


def classify(path):
    """(layer, service or None) of a source file, by its path."""
    parts = path[len(SRC) + 1:].split(os.sep)
    head = parts[0]
    if head == "kernel":
        return "kernel", None
    if head == "sandbox":
        return "sandbox", None
    if head == "sessions":
        return "sessions", None
    stem = head[:-3] if head.endswith(".rs") else head
    if stem in TOP_LEVEL:
        return TOP_LEVEL[stem], None
    if head == "services" and len(parts) > 2:
        service = parts[1]
        rest = [p[:-3] if p.endswith(".rs") else p for p in parts[2:]]
        if rest[0] == "prepare":
            return "prepare", service
        if rest[0] == "tables":
            return "tables", service
        if any(p == "api" or p.endswith("_api") for p in rest):
            return "wire", service
        return "domain", service
    if head == "services":
        return "top", None
    return "top", None


def target_of(ref):
    """(layer, service) of a `crate::...` path."""
    parts = ref.split("::")[1:]
    if not parts:
        return "top", None
    head = parts[0]
    if head in ("kernel", "sandbox", "sessions"):
        return head, None
    if head in TOP_LEVEL:
        return TOP_LEVEL[head], None
    if head == "services" and len(parts) > 2:
        service, sub = parts[1], parts[2]
        if sub == "prepare":
            return "prepare", service
        if sub == "tables":
            return "tables", service
        if sub == "api" or sub.endswith("_api"):
            return "wire", service
        return "domain", service
    if head == "services" and len(parts) == 2:
        return "domain", parts[1]
    return "top", None


REF = re.compile(r"crate::[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*(?:::\{[^}]*\})?")


def refs_in(text):
    text = re.sub(r"//[^\n]*", "", text)  # comments and doc comments name modules freely
    for m in REF.finditer(text):
        ref = m.group(0)
        if "::{" in ref:
            base, inner = ref.split("::{", 1)
            for item in inner.rstrip("}").split(","):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self":
                    yield base + "::" + item.split("::{")[0]
                elif item == "self":
                    yield base
        else:
            yield ref


def main():
    problems = []
    for root, _, files in os.walk(SRC):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            layer, service = classify(path)
            text = open(path).read()
            # Unit tests may reach across layers to build fixtures.
            text = text.split("#[cfg(test)]")[0]
            for ref in sorted(set(refs_in(text))):
                tlayer, tservice = target_of(ref)
                why = None
                if RANK[tlayer] > RANK[layer] and not (layer == "wire" and tlayer == "wire" and tservice == service):
                    why = f"{layer} must not use the higher layer {tlayer}"
                if layer == "sandbox" and tlayer in ("sessions", "tables", "domain", "wire"):
                    why = "a backend imports nothing from sessions or services"
                if layer == "sandbox" and ref.startswith("crate::kernel::store"):
                    why = "a backend imports nothing from the store"
                if service and tservice and tservice != service and tlayer in ("tables", "wire"):
                    why = f"service {service} must not use {tservice}'s {tlayer}"
                if tlayer == "sandbox" and layer not in ("sandbox", "sessions") and path not in COMPOSITION_ROOT:
                    name = ref.split("::")[2] if len(ref.split("::")) > 2 else ""
                    if name not in SANDBOX_TYPES:
                        why = "only sessions reaches a sandbox backend"
                if why:
                    problems.append(f"{path}: {ref}: {why}")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layer rule violation(s); see ARCHITECTURE.md, 'Layer rules'.")
        return 1
    print("layer rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
