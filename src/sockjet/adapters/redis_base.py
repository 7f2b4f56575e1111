"""What the classic and the sharded Redis adapters share: the object a server is given
(:class:`RedisFactory`: one server's :class:`~sockjet.adapters.redis_link.RedisLink`, shared by
the adapters of its namespaces) and the life of a namespace's adapter on it
(:class:`RedisNamespaceAdapter`: subscribe when the server starts serving, a uid of its own in
each worker process, release the link with the last adapter)."""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from typing import Any

from .cluster import ClusterAdapter, ClusterMessage
from .redis_link import RedisLink
from .wire import unpack

log = logging.getLogger("sockjet.adapters")


class RedisFactory:
    """The adapter factory a server is given (``Server(adapter=...)``): holds that server's
    Redis connections; the adapters of its namespaces share them."""

    def __init__(self, url_or_client: Any, requests_timeout: float) -> None:
        if not isinstance(requests_timeout, int | float) or requests_timeout <= 0:
            raise ValueError("requests_timeout must be a positive number of seconds")
        self._target = url_or_client
        self.link = RedisLink(url_or_client)
        self.requests_timeout = float(requests_timeout)
        self.adapters: set[RedisNamespaceAdapter] = set()

    @abstractmethod
    def make(self, nsp: Any) -> RedisNamespaceAdapter:
        """A new adapter for namespace ``nsp``."""

    def __call__(self, nsp: Any) -> RedisNamespaceAdapter:
        if self.link.closed:  # the server closed and serves again: new connections
            self.reopen()
        adapter = self.make(nsp)
        self.adapters.add(adapter)
        return adapter

    def reopen(self) -> None:
        """A new link in place of the closed one (to the same URL, or on the client given)."""
        self.link = RedisLink(self._target)

    async def released(self, adapter: RedisNamespaceAdapter) -> None:
        """An adapter closed: the connections close with the last one."""
        self.adapters.discard(adapter)
        if not self.adapters:
            await self.link.close()


class RedisNamespaceAdapter(ClusterAdapter):
    """The adapter of one namespace on a :class:`RedisFactory`: subclasses say which channels
    it reads (:meth:`subscribe`, :meth:`unsubscribe`) and how a uid looks (:meth:`new_uid`)."""

    def __init__(self, nsp: Any, factory: RedisFactory) -> None:
        super().__init__(nsp, uid=self.new_uid(), requests_timeout=factory.requests_timeout)
        self.factory = factory
        self.link = factory.link
        self._subscribed = False
        self._pid = os.getpid()
        self.link.on_down(self.fail_requests)

    @property
    def subscribed(self) -> bool:
        """Whether its channels are registered with the link (from :meth:`init` on)."""
        return self._subscribed

    @staticmethod
    @abstractmethod
    def new_uid() -> str:
        """A uid as the Node adapter of this kind makes them."""

    @abstractmethod
    def subscribe(self) -> None:
        """Register this adapter's channels with the link."""

    @abstractmethod
    def unsubscribe(self) -> None:
        """Take them back."""

    async def init(self) -> None:
        if self.closed:
            return
        if not self._subscribed:
            if self._pid != os.getpid():
                # made before worker processes were forked: each is a server of its own
                self._pid = os.getpid()
                self.uid = self.new_uid()
            self._subscribed = True
            self.subscribe()
        # connects once (later calls wait for that); after a failure, a later start tries again
        await self.link.connect()

    async def close(self) -> None:
        if self.closed:
            return
        await super().close()
        self.link.off_down(self.fail_requests)
        if self._subscribed:
            self.unsubscribe()
        await self.factory.released(self)

    def publish_request(self, message: ClusterMessage) -> None:
        self.link.check()
        self.publish(message)

    def on_raw_message(self, channel: bytes, payload: bytes) -> None:
        """A message of Node's ``ClusterAdapter`` shape as Redis delivers it (JSON or msgpack);
        malformed ones are ignored."""
        try:
            message = unpack(payload)
        except ValueError:
            log.debug("ignoring a malformed message on %r", channel)
            return
        if isinstance(message, dict):
            self.on_message(message)
