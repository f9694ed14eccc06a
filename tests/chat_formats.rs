//! Integration tests: chat_formats.
