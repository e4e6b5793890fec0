"""Connectors fetch and parse mail and meetings from providers.

They never touch the database: a connector turns a provider's data into
:class:`connectors.base.RawItem` batches and the shared parsers turn those into
:class:`connectors.message.ParsedMessage` and :class:`connectors.message.Meeting`.
"""
