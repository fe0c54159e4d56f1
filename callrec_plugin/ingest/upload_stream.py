"""The ingest API's request body, read once as it arrives.

The signature over the declared length and SHA-256 has been checked before anything here runs.
The body is then read in 64 KiB chunks, exactly the declared length and never a byte past it,
hashed as it comes, and split into its multipart parts by Werkzeug's sans-IO decoder; the audio part
is encrypted as it is parsed into an anonymous temporary file, under a key that lives only in this
process (no plaintext on disk, memory flat whatever the size). The digest is compared when the body
ends; only then is the spooled audio handed to the pipeline.
"""
import hashlib
import hmac
import tempfile

from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData, Preamble, State

from callrec_plugin.crypto import DecryptingReader, TooLargeError, encrypt_stream, generate_data_key

CHUNK = 64 * 1024
MAX_PARTS = 8  # two are expected; a body of thousands of empty parts is refused early
# The decoder buffers a preamble or a part's headers whole until their end is found: bounded.
MAX_BUFFERED = 4 * CHUNK
SPOOL_ID = "ingest-spool"  # binds the spool's file key; the key itself is random per upload


class UploadRefused(Exception):
    """The body cannot be accepted; ``status`` and ``reason`` go to the client as they are."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


class DeclaredBody:
    """Reads exactly ``length`` bytes of ``stream`` in chunks, hashing them."""

    def __init__(self, stream, length):
        self._stream, self._left, self.length = stream, length, length
        self._sha256 = hashlib.sha256()

    def chunk(self):
        """The next chunk, b"" once the declared length has been read."""
        if self._left == 0:
            return b""
        try:
            data = self._stream.read(min(CHUNK, self._left))
        except ClientDisconnected:
            data = b""
        if not data:
            raise UploadRefused(400, f"the body ended after {self.length - self._left} of the "
                                     f"{self.length} bytes its Content-Length declared")
        self._left -= len(data)
        self._sha256.update(data)
        return data

    def check_digest(self, claimed):
        while self.chunk():  # what follows the closing boundary is part of the signed body too
            pass
        if not hmac.compare_digest(self._sha256.hexdigest(), claimed):
            raise UploadRefused(401, "request body does not match its SHA-256 header (altered or truncated upload)")


class MultipartBody:
    """The parts of a multipart body, pulled one at a time: ``for name, filename, part in body.parts()``.

    ``part.read(n)`` reads the current part's data; a part left unread is skipped when the next is
    asked for."""

    def __init__(self, body, boundary):
        self._body = body
        self._decoder = MultipartDecoder(boundary.encode("latin-1"), MAX_BUFFERED, max_parts=MAX_PARTS)
        self._pending = b""
        self._in_part = False

    def _event(self):
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError as exc:  # also UnicodeDecodeError in a part's headers
                raise UploadRefused(400, f"the multipart body could not be read: {exc}") from None
            except RequestEntityTooLarge:
                raise UploadRefused(400, f"the multipart body has more than {MAX_PARTS} parts") from None
            if not isinstance(event, NeedData):
                return event
            # After the closing boundary the rest is only hashed (check_digest), never buffered.
            data = None if self._decoder.state == State.EPILOGUE else self._body.chunk()
            try:
                self._decoder.receive_data(data or None)
            except RequestEntityTooLarge:
                raise UploadRefused(400, "the multipart body could not be read: no boundary or end of a "
                                         f"part's headers within {MAX_BUFFERED // 1024} KiB") from None

    def read(self, size=-1):
        while not self._pending and self._in_part:
            event = self._event()
            if not isinstance(event, Data):  # pragma: no cover - the decoder always ends a part with Data
                raise UploadRefused(400, "the multipart body could not be read: a part ended unexpectedly")
            self._pending, self._in_part = event.data, event.more_data
        if size is None or size < 0:
            size = len(self._pending)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def parts(self):
        while True:
            while self.read(CHUNK):  # skip what is left of the previous part
                pass
            event = self._event()
            while isinstance(event, Preamble):
                event = self._event()
            if isinstance(event, Epilogue):
                return
            if not isinstance(event, (Field, File)):  # pragma: no cover - decoder states allow no other
                raise UploadRefused(400, "the multipart body could not be read")
            self._in_part, self._pending = True, b""
            yield event.name, getattr(event, "filename", None), self


def read_text_part(part, limit):
    data = bytearray()
    while chunk := part.read(CHUNK):
        data += chunk
        if len(data) > limit:
            raise UploadRefused(413, f"the metadata part is over {limit // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadRefused(400, "metadata is not valid UTF-8") from None


class _Unmapped:
    """A file without ``fileno``: DecryptingReader then reads instead of memory-mapping, so the
    spool's pages never count against the process (a mapped 100 MiB file would show in its RSS)."""

    def __init__(self, fileobj):
        self._fileobj = fileobj
        self.read, self.readinto, self.seek, self.tell = fileobj.read, fileobj.readinto, fileobj.seek, fileobj.tell

    def close(self):
        self._fileobj.close()


class EncryptedSpool:
    """The audio part, encrypted as it is parsed into an anonymous temporary file.

    Its key exists only in this object: the file is unreadable once the process forgets it, and it
    is deleted when closed (or, unlinked from the start, when the process ends)."""

    def __init__(self, part, max_bytes):
        self._key = generate_data_key()
        self._file = tempfile.TemporaryFile(prefix="callrec-upload-")
        try:
            result = encrypt_stream(part, self._file, self._key, SPOOL_ID, max_bytes=max_bytes, hash_plaintext=False)
        except TooLargeError:
            self.close()
            raise UploadRefused(413, f"the audio is more than the limit of {max_bytes} bytes") from None
        except BaseException:
            self.close()
            raise
        self.size, self._stored = result.plaintext_size, result.stored_size

    def reader(self):
        """A seekable reader of the audio; closing it deletes the spool."""
        self._file.flush()
        file, self._file = self._file, None
        return DecryptingReader(_Unmapped(file), self._key, SPOOL_ID, self._stored)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
