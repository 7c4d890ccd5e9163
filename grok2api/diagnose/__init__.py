"""The doctor: step-by-step checks of the way to grok.com (DNS, TCP, TLS, the home page, the account's session,
modes, rate limits, one chat turn, an asset download), each with a verdict in plain words and its fix; and the
drift canary that runs the chat turn on a schedule. Shared by ``grok2api doctor``, the admin's Diagnose page and
the dashboard's banner. It speaks to grok.com through ``grok/`` only, never through a client API."""
