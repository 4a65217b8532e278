import { runBackendConformance } from '../../backends/conformance.js';
import { engineSelected, openTestBackend } from '../../backends/engines.js';

// Selected by SOLEDAD_TEST_BACKENDS (default: every engine); selected but unreachable fails, never skips.
if (engineSelected('couch')) runBackendConformance('couch', () => openTestBackend('couch'));
