# Starts one Debian Swift server with swift.conf read from a path of our choosing: Swift reads it
# from a module constant (/etc/swift/swift.conf), set here before the servers import it.
#   swift-launcher.py SWIFT_CONF SERVER_CONF SERVER_NAME [verbose|quiet]
# verbose (the default) also writes every log line to stderr.
import sys
import swift.common.utils as utils
utils.SWIFT_CONF_FILE = sys.argv[1]
from swift.common import storage_policy, constraints
storage_policy.reload_storage_policies()
constraints.reload_constraints()
from swift.common.wsgi import run_wsgi
verbose = len(sys.argv) < 5 or sys.argv[4] != 'quiet'
sys.exit(run_wsgi(sys.argv[2], sys.argv[3], verbose=verbose))
