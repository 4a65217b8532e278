/** The incoming box's configuration keys and the `[incoming-namespaces]` section. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../../src/common/errors.js';
import { loadConfig } from '../../../src/server/config.js';

describe('incoming configuration', () => {
  it('defaults: 10 min threshold, 3 distinct failing versions, no tolerance, keep failed, MX only', () => {
    const c = loadConfig({});
    assert.equal(c.incomingProcessingThresholdMs, 600_000);
    assert.equal(c.incomingMaxFailures, 3);
    assert.equal(c.incomingQuotaToleranceBytes, 0);
    assert.equal(c.incomingDeletePermanentlyFailed, false);
    assert.equal(c.incomingNamespaces.size, 0);
  });

  it('reads durations, sizes, booleans and the namespaces of each trusted app; none of them is "unknown"', () => {
    const c = loadConfig({}, [
      '[soledad-server]',
      'incoming_processing_threshold = 90s',
      'incoming_max_failures = 5',
      'incoming_quota_tolerance = 5MiB',
      'incoming_delete_permanently_failed = true',
      '',
      '[incoming-namespaces]',
      'mx = MX',
      'calendar = CAL, CAL_2',
    ].join('\n'));
    assert.equal(c.incomingProcessingThresholdMs, 90_000);
    assert.equal(c.incomingMaxFailures, 5);
    assert.equal(c.incomingQuotaToleranceBytes, 5 * 1024 * 1024);
    assert.equal(c.incomingDeletePermanentlyFailed, true);
    assert.deepEqual([...c.incomingNamespaces], [['mx', ['MX']], ['calendar', ['CAL', 'CAL_2']]]);
    assert.deepEqual(c.unknownOptions, []);
    for (const [text, ms] of [['600', 600_000], ['1500ms', 1500], ['10m', 600_000], ['1h', 3_600_000], ['2.5s', 2500]] as const) {
      assert.equal(loadConfig({}, `[soledad-server]\nincoming_processing_threshold = ${text}\n`).incomingProcessingThresholdMs, ms, text);
    }
  });

  it('refuses bad values with the option name in the message', () => {
    const bad: Array<[string, RegExp]> = [
      ['[soledad-server]\nincoming_processing_threshold = soon\n', /^incoming_processing_threshold:/],
      ['[soledad-server]\nincoming_processing_threshold = 0\n', /^incoming_processing_threshold:/],
      ['[soledad-server]\nincoming_max_failures = 0\n', /^incoming_max_failures:/],
      ['[soledad-server]\nincoming_quota_tolerance = lots\n', /^incoming_quota_tolerance:/],
      ['[soledad-server]\nincoming_delete_permanently_failed = perhaps\n', /^incoming_delete_permanently_failed:/],
      ['[incoming-namespaces]\nmx = MX, ../etc\n', /^\[incoming-namespaces\] mx: invalid namespace/],
    ];
    for (const [text, message] of bad) {
      assert.throws(() => loadConfig({}, text), (err: unknown) => err instanceof ConfigError && message.test((err as Error).message), text);
    }
  });
});
