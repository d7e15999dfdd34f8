"""The ``gateway`` role: delivery frames streamed to subscribers over HTTP (design §8).

``service.GatewayService`` runs the role; ``wire`` defines the stream events the SDK
(``connectors/sdk/gateway.py``) reads; ``docs/gateway.md`` describes both.
"""
