"""gcp-storage-emulator, in memory, with the two parts of the GCS JSON API it lacks that the
clients of a gs:// workdir use: `python tests/gcs_emulator.py PORT BUCKET` serves BUCKET on
127.0.0.1:PORT until killed.

- Downloads carry x-goog-generation: TensorStore (orbax's arrays) reads an object's generation
  from that header and conditions its next write of OCDBT's manifest on it; without it the
  write fails with "Malformed StorageGeneration".
- objects/moveTo: gcsfs renames with it (epath's replace) and, on the emulator's 501, retries
  for seconds before falling back to copy and delete.
"""
import sys
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.handlers import objects

_download = objects.download


def download(request, response, storage, *args, **kwargs):
  _download(request, response, storage, *args, **kwargs)
  if response.status in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
    obj = storage.get_file_obj(request.params['bucket_name'], request.params['object_id'])
    response['x-goog-generation'] = obj['generation']
    response['x-goog-metageneration'] = obj['metageneration']


def move(request, response, storage, *args, **kwargs):
  request.params['dest_bucket_name'] = request.params['bucket_name']
  objects.copy(request, response, storage)
  if response.status == HTTPStatus.OK:
    objects.delete(request, response, storage)


def patch():
  objects.download = download  # objects.get calls it for ?alt=media
  for _, handlers in server.HANDLERS:
    for method, handler in handlers.items():
      if handler is _download:
        handlers[method] = download
  api = server.settings.API_ENDPOINT
  moves = [(rf'^{prefix}/b/(?P<bucket_name>[-.\w]+)/o/(?P<object_id>.*[^/]+)/moveTo/o/'
            r'(?P<dest_object_id>.*[^/]+)$', {'POST': move}) for prefix in (api, '')]
  server.HANDLERS = (*moves, *server.HANDLERS)


if __name__ == '__main__':
  patch()
  server.create_server('127.0.0.1', int(sys.argv[1]), in_memory=True,
                       default_bucket=sys.argv[2]).run()
