"""What a provider receives: rendered content, recipients and the signed tokens in their links."""
