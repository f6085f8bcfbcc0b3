import sys

from ptloss_tf.export.cli import main

sys.exit(main())
