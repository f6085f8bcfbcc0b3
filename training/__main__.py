import sys

from ptloss_tf.training.cli import main

sys.exit(main())
