"""Everything that knows about Kafka: the service runtime, topic admin, the local broker."""
