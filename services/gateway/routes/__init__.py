"""The gateway's routes, one router per concern: the OpenAI API, operations, the chat page."""
