"""The only upload handler: files stay in memory, and a hard cap holds while the body streams.

Django's MemoryFileUploadHandler quietly hands an oversized file to the next handler (by default a
temporary file on disk) or, with no next handler, drops it. Ours refuses instead: the declared
length is checked before any byte is read, and the running total while the body streams, so an
oversized upload costs at most MAX_UPLOAD_BYTES of RAM, never disk.
"""

from io import BytesIO

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers


class UploadTooLarge(Exception):
    """The request body or the files in it exceed MAX_UPLOAD_BYTES (→ 413)."""


def body_too_large(content_length: int | None) -> bool:
    return content_length is not None and content_length > settings.MAX_UPLOAD_BYTES + settings.MULTIPART_OVERHEAD_BYTES


class CappedMemoryUploadHandler(FileUploadHandler):
    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0  # bytes of all files in this request so far

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if body_too_large(content_length):
            raise UploadTooLarge()

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.file = BytesIO()
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.MAX_UPLOAD_BYTES:
            self.file = None  # let the partial upload go now
            raise UploadTooLarge()
        self.file.write(raw_data)

    def file_complete(self, file_size):
        self.file.seek(0)
        return InMemoryUploadedFile(
            file=self.file,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
