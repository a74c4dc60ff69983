"""The message broker: the interface (`base`), RabbitMQ (`amqp`), in-process (`embedded`), and
RabbitMQ users per role (`permissions`)."""
