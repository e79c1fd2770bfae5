# A Python storlet (the Storlets Python API): upper-cases text, line by line, and says so in the
# output metadata. Deploy: sandlet deploy samples/uppercase.py --language python --main uppercase.UpperStorlet


class UpperStorlet(object):
    def __init__(self, logger):
        self.logger = logger

    def __call__(self, in_files, out_files, params):
        metadata = in_files[0].get_metadata()
        metadata['transformed-by'] = 'uppercase.py'
        out_files[0].set_metadata(metadata)
        lines = 0
        for line in iter(in_files[0].readline, b''):
            out_files[0].write(line.upper())
            lines += 1
        self.logger.info('upper-cased %d lines' % lines)
        out_files[0].close()
