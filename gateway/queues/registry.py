"""Which queues exist, how topics and consumer filters find them, and how that survives restarts.

Queues come from the config file (`origin` config), from run-time requests (runtime: CLI, admin
API, or a consumer's `$queue/<name>/<filter>`), from templates (instance, one per concrete topic)
and from dead-lettering (dlq). Every definition is a row of table `queues` so a restart finds
run-time queues again; config queues are stored too, so that a queue removed from the config
keeps its messages as an *orphan*: listed, consumable by name, purgeable, deletable, but no
longer bound to its filter.

Start-up reads definitions and per-queue aggregates only, then the first window of each queue:
never the whole backlog.
"""

from __future__ import annotations

import logging

import msgspec

from gateway.config import ConfigError, QueueSpec, queue_spec
from gateway.mqtt.matcher import TopicTrie
from gateway.mqtt.topics import has_wildcard, matches, topic_name_error
from gateway.queuenames import Q_PREFIX, QUEUE_PREFIX, dead_letter_name, split_named
from gateway.queues.limits import CreationLimits
from gateway.queues.model import NEVER, Entry, Kind, LimitReached, QueueError
from gateway.queues.queue import Queue
from gateway.queues.window import Context
from gateway.store.queues import StoredQueue

log = logging.getLogger(__name__)
_spec_decoder = msgspec.json.Decoder(QueueSpec)
TARGET_CACHE = 4096


def encode_spec(spec: QueueSpec) -> bytes:
    return msgspec.json.encode(spec)


def kind_of(spec: QueueSpec) -> Kind:
    if spec.template:
        return "template"
    return "last_value" if spec.last_value_key else "standard"


def instance_spec(template: QueueSpec, topic: str) -> QueueSpec:
    """An instance inherits every setting of its template and is named after its topic."""
    return msgspec.structs.replace(template, filter=topic, name="", template=False)


def dead_letter_spec(parent: QueueSpec, name: str) -> QueueSpec:
    """A dead-letter queue keeps the parent's size limits, never blocks and never loops."""
    return msgspec.structs.replace(parent, name=name, template=False, last_value_key="",
                                   ttl=0, overflow="drop_oldest", max_deliveries=0,
                                   dispatch="round_robin", dead_letter_expired=False)


class Registry:
    """Every queue by name, the trie of bound filters, templates and dead-letter names."""

    def __init__(self, ctx: Context, limits: CreationLimits) -> None:
        self.ctx = ctx
        self.limits = limits
        self.queues: dict[str, Queue] = {}
        self.trie: TopicTrie[str, Queue] = TopicTrie()
        self.by_filter: dict[str, Queue] = {}
        self.templates: list[Queue] = []
        self.dlq_parent: dict[str, str] = {}
        self._targets: dict[str, list[Queue]] = {}  # topic -> queues it is stored in

    # -- membership ------------------------------------------------------------------------

    def add(self, q: Queue, save: bool = False) -> Queue:
        self.queues[q.name] = q
        self.limits.counted(q.kind, 1)
        self._bind(q)
        if q.kind != "dead_letter":
            self.dlq_parent[dead_letter_name(q.name)] = q.name
        if save:
            self.save(q)
        return q

    def _bind(self, q: Queue) -> None:
        self._targets.clear()
        f = q.spec.filter
        if q.kind == "template":
            self.templates.append(q)
            self.trie.set(f, q.name, q)
        elif q.bound:
            self.trie.set(f, q.name, q)
            self.by_filter.setdefault(f, q)
        elif q.kind == "instance":
            self.by_filter.setdefault(f, q)

    def _unbind(self, q: Queue) -> None:
        self._targets.clear()
        f = q.spec.filter
        self.trie.remove(f, q.name)
        if q in self.templates:
            self.templates.remove(q)
        if self.by_filter.get(f) is q:
            del self.by_filter[f]
            for other in self.queues.values():
                if other is not q and other.spec.filter == f and (
                        other.bound or other.kind == "instance") and other.kind != "template":
                    self.by_filter[f] = other
                    break

    def remove(self, q: Queue) -> None:
        self._unbind(q)
        self._targets.clear()
        if self.queues.pop(q.name, None) is not None:
            self.limits.counted(q.kind, -1)
        self.dlq_parent.pop(dead_letter_name(q.name), None)

    def save(self, q: Queue) -> None:
        origin = f"{q.origin}:{q.parent}" if q.parent else q.origin
        self.ctx.store.save_definition(q.name, encode_spec(q.spec), origin)

    def get(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            raise QueueError(f"no queue named {name!r}; `edgeq queue list` shows them")
        return q

    def create(self, spec: QueueSpec, origin: str = "runtime") -> Queue:
        """A new queue from a management request; QueueError if it cannot be."""
        try:
            spec = queue_spec(msgspec.structs.asdict(spec), where="queue")
        except ConfigError as e:
            raise QueueError(str(e)) from None
        name = spec.queue_name
        if name in self.queues or name in self.dlq_parent:
            raise QueueError(f"a queue named {name!r} already exists; choose another name")
        self.limits.check_queue(name)
        return self.add(Queue(spec, kind_of(spec), self.ctx, origin), save=True)

    # -- finding queues --------------------------------------------------------------------

    def targets(self, topic: str) -> list[Queue]:
        """The queues a message on `topic` is stored in (template instances created on the
        way); cached per topic, because matching the trie costs more than a dict lookup."""
        cached = self._targets.get(topic)
        if cached is not None:
            return cached
        targets: list[Queue] = []
        for _, q in self.trie.match(topic):
            if q.kind == "template" and self._declared(topic, q):
                continue
            target = self.instance(q, topic) if q.kind == "template" else q
            if target is not None and target not in targets:
                targets.append(target)
        if len(self._targets) >= TARGET_CACHE:
            self._targets.clear()
        self._targets[topic] = targets
        return targets

    def _declared(self, topic: str, template: Queue) -> bool:
        """Whether a declared queue takes precedence over `template` for `topic`: one bound
        to exactly that topic, or to exactly the template's own filter."""
        for f in (topic, template.spec.filter):
            q = self.by_filter.get(f)
            if q is not None and q.bound and q.kind != "template":
                return True
        return False

    def instance(self, template: Queue, topic: str) -> Queue | None:
        """The instance queue of `topic`, created (and persisted) on first use; LimitReached
        at `storage.max_instances`."""
        q = self.queues.get(topic)
        if q is not None:
            return q if q.kind == "instance" else None
        self.limits.check_instance(topic)
        spec = instance_spec(template.spec, topic)
        return self.add(Queue(spec, "instance", self.ctx, "instance", template.name), save=True)

    def dead_letter_queue(self, parent: Queue) -> Queue:
        """The dead-letter queue of `parent` (of its template, for an instance)."""
        if parent.kind == "instance":
            template = self.queues.get(parent.parent)
            if template is not None and template.kind == "template":
                parent = template
        name = dead_letter_name(parent.name)
        q = self.queues.get(name)
        if q is not None:
            return q
        spec = dead_letter_spec(parent.spec, name)
        return self.add(Queue(spec, "dead_letter", self.ctx, "dlq", parent.name), save=True)

    def resolve(self, topic_filter: str, create: bool = True) -> Queue | None:
        """The queue a `$q/...` or `$queue/...` subscription consumes, or None (0x8F)."""
        if topic_filter.startswith(Q_PREFIX):
            return self._resolve_filter(topic_filter[len(Q_PREFIX):], create)
        if topic_filter.startswith(QUEUE_PREFIX):
            return self._resolve_name(topic_filter[len(QUEUE_PREFIX):], create)
        return None

    def binding(self, topic_filter: str) -> tuple[str, bool] | None:
        """For a `$q/...` or `$queue/...` subscription: (the filter whose messages it would
        consume, whether subscribing would create a new queue), or None when it names none.
        Changes nothing: the broker authorizes with this before `resolve` creates anything."""
        q = self.resolve(topic_filter, create=False)
        if q is not None:
            return q.spec.filter, False
        if topic_filter.startswith(Q_PREFIX):
            rest = topic_filter[len(Q_PREFIX):]
            if has_wildcard(rest) or topic_name_error(rest):
                return None
            found = any(matches(t.spec.filter, rest) for t in self.templates)
            return (rest, False) if found else None
        rest = topic_filter[len(QUEUE_PREFIX):]
        parent = self.queues.get(self.dlq_parent.get(rest, ""))
        if parent is not None:
            return parent.spec.filter, False
        named = split_named(rest)
        if named is None or named[0] in self.queues or named[0].startswith("$"):
            return None  # a reserved name (`$dlq/...`) is never made by subscribing: 0x8F
        return named[1], True

    def _resolve_filter(self, rest: str, create: bool) -> Queue | None:
        q = self.by_filter.get(rest)
        if q is not None or not create or has_wildcard(rest) or topic_name_error(rest):
            return q
        for template in self.templates:
            if matches(template.spec.filter, rest):
                return self.instance(template, rest)
        return None

    def _resolve_name(self, rest: str, create: bool) -> Queue | None:
        q = self.queues.get(rest)
        if q is not None:
            return None if q.kind == "template" else q
        parent = self.dlq_parent.get(rest)
        if parent is not None and parent in self.queues:
            return self.dead_letter_queue(self.queues[parent]) if create else None
        named = split_named(rest)
        if named is None:
            return None
        name, topic_filter = named
        q = self.queues.get(name)
        if q is not None:
            return q if q.spec.filter == topic_filter and q.kind != "template" else None
        if not create:
            return None
        try:
            # Made by a client: it must never hold back other tenants' producers.
            return self.create(QueueSpec(filter=topic_filter, name=name,
                                         overflow="drop_oldest"))
        except LimitReached:
            raise
        except QueueError as e:
            log.info("refused $queue/%s: %s", rest, e)
            return None

    def idle_instances(self, now: float) -> list[Queue]:
        """Instances empty and without consumers for `storage.instance_expiry` seconds."""
        expiry = self.limits.instance_expiry
        idle: list[Queue] = []
        for q in self.queues.values():
            if q.kind != "instance" or q.depth or q.members:
                q.idle_since = 0.0
            elif not q.idle_since:
                q.idle_since = now
            elif expiry and now - q.idle_since >= expiry:
                idle.append(q)
        return idle

    # -- start-up --------------------------------------------------------------------------

    def load(self, specs: list[QueueSpec]) -> None:
        store = self.ctx.store
        stored = {row.name: row for row in store.load_definitions()}
        if self._rename_dead_letter_queues(stored):
            stored = {row.name: row for row in store.load_definitions()}
        summaries = store.load_summaries()
        self.ctx.last_id = store.max_id()
        for spec in specs:
            q = self.add(Queue(spec, kind_of(spec), self.ctx, "config"))
            row = stored.get(q.name)
            if row is None or row.origin != "config" or row.spec != encode_spec(spec):
                self.save(q)
        later: list[tuple[str, str, QueueSpec]] = []
        for row in stored.values():
            if row.name in self.queues:
                continue
            try:
                spec = _spec_decoder.decode(row.spec)
            except msgspec.DecodeError as e:
                log.error("queue %s: stored definition unreadable (%s); skipped", row.name, e)
                continue
            origin, _, parent = row.origin.partition(":")
            if origin == "runtime":
                self.add(Queue(spec, kind_of(spec), self.ctx, "runtime"))
            elif origin == "config" and row.name not in summaries:
                store.forget_definition(row.name)
            else:
                later.append((origin, parent, spec))
        for origin, parent, spec in later:
            self._add_stored(origin, parent, spec)
        for name in summaries:
            if name not in self.queues:
                self.add(Queue(QueueSpec(filter=name), "standard", self.ctx, "orphan"))
        for name, (count, size) in summaries.items():
            restore(self.queues[name], count, size)

    def _rename_dead_letter_queues(self, stored: dict[str, StoredQueue]) -> bool:
        """Dead-letter queues of earlier versions (`orders.dlq`) take their `$dlq/` name."""
        renamed = False
        for row in stored.values():
            origin, _, parent = row.origin.partition(":")
            new = dead_letter_name(parent)
            if origin != "dlq" or not parent or row.name == new or new in stored:
                continue
            try:
                spec = msgspec.structs.replace(_spec_decoder.decode(row.spec), name=new)
            except msgspec.DecodeError:
                continue  # reported and skipped by `load`
            self.ctx.store.rename_now(row.name, new, encode_spec(spec))
            log.info("dead-letter queue %s renamed %s", row.name, new)
            renamed = True
        return renamed

    def _add_stored(self, origin: str, parent: str, spec: QueueSpec) -> None:
        if origin == "instance":
            template = self.queues.get(parent)
            if template is not None and template.kind == "template":
                spec = instance_spec(template.spec, spec.filter)
            self.add(Queue(spec, "instance", self.ctx, "instance", parent))
        elif origin == "dlq":
            self.add(Queue(spec, "dead_letter", self.ctx, "dlq", parent))
        else:  # a config queue no longer in the config, with messages left
            self.add(Queue(spec, kind_of(spec), self.ctx, "orphan"))
            log.warning("queue %s is no longer in the config but holds messages: kept unbound "
                        "(consume with $queue/%s, or purge/delete it)", spec.queue_name,
                        spec.queue_name)

    # -- reload ----------------------------------------------------------------------------

    def reload(self, specs: list[QueueSpec]) -> list[str]:
        """Apply the config's queue definitions; returns one line per change for the log."""
        notes: list[str] = []
        wanted = {spec.queue_name: spec for spec in specs}
        for old in [q for q in self.queues.values() if q.origin == "config"]:
            if old.name not in wanted:
                notes.append(self._retire(old))
        for name, spec in wanted.items():
            q = self.queues.get(name)
            if q is None:
                self.add(Queue(spec, kind_of(spec), self.ctx, "config"), save=True)
                notes.append(f"queue {name}: added")
            elif (q.kind == "template") != spec.template:
                notes.append(self._convert(q, spec))
            elif q.spec != spec or q.origin != "config":
                self._change(q, spec)
                notes.append(f"queue {name}: settings applied")
        return notes

    def _retire(self, q: Queue) -> str:
        if q.kind == "template" or (not q.depth and not q.members):
            self.remove(q)
            self.ctx.store.forget_definition(q.name)
            return f"queue {q.name}: removed"
        self._unbind(q)
        q.bound, q.origin = False, "orphan"
        return (f"queue {q.name}: no longer in the config; kept unbound with {q.depth} messages"
                " and its consumers until purged or deleted")

    def _convert(self, q: Queue, spec: QueueSpec) -> str:
        if q.kind != "template" and (q.depth or q.members):
            return (f"queue {q.name}: not turned into a template while it holds {q.depth} "
                    "messages or has consumers; purge it and reload")
        self.remove(q)
        self.add(Queue(spec, kind_of(spec), self.ctx, "config"), save=True)
        return f"queue {q.name}: re-created as {'a template' if spec.template else 'a queue'}"

    def _change(self, q: Queue, spec: QueueSpec) -> None:
        self._unbind(q)
        q.origin, q.bound = "config", True
        q.apply(spec)
        self._bind(q)
        self.save(q)
        if q.kind == "template":
            for inst in self.queues.values():
                if inst.kind == "instance" and inst.parent == q.name:
                    inst.apply(instance_spec(spec, inst.spec.filter))


def restore(q: Queue, count: int, size: int) -> None:
    """Start-up: a queue's depth from the aggregates, its last-value keys, its first window."""
    store = q.ctx.store
    q.depth, q.bytes = count, size
    q.disk.count, q.disk.bytes = count, size
    if q.key_fn is not None:
        for key, id_, key_size in store.load_keys(q.name):
            old = q.lv.get(key)
            if old is not None:  # two values of one key (one was in flight): keep the newest
                store.delete_now(old.id)
                q.disk.forget(old)
                q.depth -= 1
                q.bytes -= old.size
                q.c.replaced += 1
            q.lv[key] = Entry(id_, None, key_size, key, 0, 0.0, NEVER)
    room = q.ctx.budget - q.ctx.memory
    if room > 0:  # else the window fills at the first dispatch, one message at a time at least
        q.disk.take(store.load_window(q.name, 0, q.ctx.window, room))
