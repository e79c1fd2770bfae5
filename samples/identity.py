# A Python storlet as OpenStack Storlets writes them: copies its input and its metadata.
# Deploy: sandlet deploy samples/identity.py --language python --main identity.IdentityStorlet


class IdentityStorlet(object):
    def __init__(self, logger):
        self.logger = logger

    def __call__(self, in_files, out_files, params):
        source, sink = in_files[0], out_files[0]
        sink.set_metadata(source.get_metadata())
        while True:
            chunk = source.read(64 * 1024)
            if not chunk:
                break
            sink.write(chunk)
        source.close()
        sink.close()
