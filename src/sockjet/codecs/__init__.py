"""Wire codecs: pure, sans-I/O encoders and decoders shared by the server and the client."""
