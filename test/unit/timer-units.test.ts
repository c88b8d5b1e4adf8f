import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CalendarSyntaxError, formatTimeSpan, parseCalendar, parseSystemdTimestamp, parseTimeSpan, toCronSchedule } from '../../src/update/timer/calendar.ts';
import { lastOutcome, parseLogText } from '../../src/update/timer/log.ts';
import { parseEnvironmentFile, parseShow } from '../../src/update/timer/schedule.ts';
import {
  cronLine,
  environmentLine,
  quoteExecArgument,
  readScheduleDefinition,
  renderServiceUnit,
  renderTimerUnit,
  scheduledEnvironment,
  type ScheduleDefinition,
} from '../../src/update/timer/units.ts';

const run = promisify(execFile);

const paths = { config: '/home/ada/.config/upkeep', cache: '/home/ada/.cache/upkeep', state: '/home/ada/.local/state/upkeep', data: '/home/ada/.local/share/upkeep' };

function definition(overrides: Partial<ScheduleDefinition> = {}): ScheduleDefinition {
  return {
    schemaVersion: 1,
    scope: 'user',
    interval: 'weekly',
    calendar: 'weekly',
    normalized: 'Mon *-*-* 00:00:00',
    randomizedDelaySeconds: 3600,
    checkOnly: false,
    command: ['/usr/bin/node', '/opt/upkeep/bin/upkeep.js', 'update', 'run', '--json', '--continue-on-error'],
    environment: { PATH: '/usr/bin:/bin', CI: 'true' },
    environmentFile: '/home/ada/.config/upkeep/schedule.env',
    log: { events: '/home/ada/.local/state/upkeep/logs/scheduled.ndjson', stderr: '/home/ada/.local/state/upkeep/logs/scheduled.stderr.log' },
    upkeepVersion: '0.1.0',
    writtenAt: '2026-01-01T00:00:00.000Z',
    ...overrides,
  };
}

describe('calendar expressions', () => {
  // Each normal form is the one `systemd-analyze calendar` prints (checked against it below).
  const forms: Array<[string, string]> = [
    ['daily', '*-*-* 00:00:00'],
    ['weekly', 'Mon *-*-* 00:00:00'],
    ['monthly', '*-*-01 00:00:00'],
    ['hourly', '*-*-* *:00:00'],
    ['quarterly', '*-01,04,07,10-01 00:00:00'],
    ['mon *-*-* 04:00', 'Mon *-*-* 04:00:00'],
    ['Mon..Fri 4:0', 'Mon..Fri *-*-* 04:00:00'],
    ['Mon-Fri', 'Mon..Fri *-*-* 00:00:00'],
    ['Sat,Sun 12:30', 'Sat,Sun *-*-* 12:30:00'],
    ['Fri,Mon,Tue,Wed', 'Mon..Wed,Fri *-*-* 00:00:00'],
    ['Sun,Mon', 'Mon,Sun *-*-* 00:00:00'],
    ['Mon..Sun', '*-*-* 00:00:00'],
    ['sunday', 'Sun *-*-* 00:00:00'],
    ['*-*-01 03:00', '*-*-01 03:00:00'],
    ['*-1/2-1 3:00', '*-01/2-01 03:00:00'],
    ['04:00', '*-*-* 04:00:00'],
    ['*:0/15', '*-*-* *:00/15:00'],
    ['12-25', '*-12-25 00:00:00'],
    ['2026-*-* 1:2:3', '2026-*-* 01:02:03'],
    ['*-*-1,15 2..5:00', '*-*-01,15 02..05:00:00'],
    ['*-*-* 04:00 utc', '*-*-* 04:00:00 UTC'],
    ['Mon *-*-* 04:00 Europe/Berlin', 'Mon *-*-* 04:00:00 Europe/Berlin'],
  ];

  it('parses the common forms and normalises them as systemd does', () => {
    for (const [expression, normalized] of forms) expect(parseCalendar(expression).normalized, expression).toBe(normalized);
  });

  it('agrees with systemd-analyze on every one of those forms', async () => {
    for (const [expression, normalized] of forms) {
      const { stdout } = await run('systemd-analyze', ['calendar', expression], { env: { ...process.env, TZ: 'UTC' } });
      expect(/Normalized form: (.+)/.exec(stdout)?.[1], expression).toBe(normalized);
    }
  });

  it('refuses what systemd refuses, saying which part is wrong', () => {
    const refused: Array<[string, RegExp]> = [
      ['*-*-* 25:00', /25 is not a hour/],
      ['Fri..Mon', /runs forwards/],
      ['*:*/15', /not a minute/],
      ['Funday', /not a weekday/],
      ['Mon *-*-* 04:00 Mars/Base', /time zone/],
      ['', /empty/],
      ['04:00 Mon', /not a weekday|neither/],
      ['*-13-01', /13 is not a month/],
    ];
    for (const [expression, reason] of refused) expect(() => parseCalendar(expression), expression).toThrow(reason);
    expect(() => parseCalendar('*-*~01')).toThrow(CalendarSyntaxError);
  });

  it('turns schedules into cron lines where cron can say the same', () => {
    const cron = (expression: string): string | null => toCronSchedule(parseCalendar(expression));
    expect(cron('daily')).toBe('0 0 * * *');
    expect(cron('weekly')).toBe('0 0 * * 1');
    expect(cron('monthly')).toBe('0 0 1 * *');
    expect(cron('hourly')).toBe('0 * * * *');
    expect(cron('Mon..Fri 04:30')).toBe('30 4 * * 1-5');
    expect(cron('Sat,Sun 12:00')).toBe('0 12 * * 0,6');
    expect(cron('Mon,Wed,Sun 12:00')).toBe('0 12 * * 0,1,3');
    expect(cron('*:0/15')).toBe('0-59/15 * * * *');
    expect(cron('*-*-1,15 2..5:00')).toBe('0 2-5 1,15 * *');
    // Seconds, years, zones, and a day of the month together with weekdays are beyond cron.
    expect(cron('*-*-* 04:00:30')).toBeNull();
    expect(cron('2026-*-* 04:00')).toBeNull();
    expect(cron('*-*-* 04:00 UTC')).toBeNull();
    expect(cron('Mon *-*-01 04:00')).toBeNull();
  });

  it('reads time spans for the random delay, and writes them back as systemd does', () => {
    expect(parseTimeSpan('1h')).toBe(3600);
    expect(parseTimeSpan('30min')).toBe(1800);
    expect(parseTimeSpan('1h 30min')).toBe(5400);
    expect(parseTimeSpan('90')).toBe(90);
    expect(parseTimeSpan('0')).toBe(0);
    expect(parseTimeSpan('2 days')).toBe(172_800);
    expect(parseTimeSpan('1M')).toBeNull();
    expect(parseTimeSpan('soon')).toBeNull();
    expect(parseTimeSpan('1h and a bit')).toBeNull();
    expect(formatTimeSpan(3600)).toBe('1h');
    expect(formatTimeSpan(5400)).toBe('1h 30min');
    expect(formatTimeSpan(90_061)).toBe('1d 1h 1min 1s');
    expect(formatTimeSpan(0)).toBe('0');
  });

  it('reads systemd timestamps in UTC, and nothing else', () => {
    expect(parseSystemdTimestamp('Mon 2026-11-23 04:00:00 UTC')).toBe('2026-11-23T04:00:00.000Z');
    expect(parseSystemdTimestamp('2026-11-23 04:00:00.123456 UTC')).toBe('2026-11-23T04:00:00.000Z');
    expect(parseSystemdTimestamp('Mon 2026-11-23 04:00:00 CET')).toBeNull();
    expect(parseSystemdTimestamp('n/a')).toBeNull();
  });
});

describe('unit files', () => {
  it('writes the timer of seed 002 §9.1', () => {
    const timer = renderTimerUnit(definition({ calendar: 'Mon..Fri 04:00', randomizedDelaySeconds: 1800 }));
    expect(timer).toMatch(/^\[Timer\]\nOnCalendar=Mon\.\.Fri 04:00\n(?:#.*\n)?RandomizedDelaySec=30min\n(?:#.*\n)?Persistent=true$/m);
    expect(timer).toMatch(/^\[Install\]\nWantedBy=timers\.target$/m);
  });

  it('writes a oneshot, low-priority, unattended service that logs to the state folder', () => {
    const service = renderServiceUnit(definition());
    for (const line of [
      'Type=oneshot',
      'ExecStartPre=-/usr/bin/node /opt/upkeep/bin/upkeep.js schedule logs --rotate',
      'ExecStart=/usr/bin/node /opt/upkeep/bin/upkeep.js update run --json --continue-on-error',
      'After=network-online.target',
      'Wants=network-online.target',
      'Environment="PATH=/usr/bin:/bin"',
      'Environment="CI=true"',
      'EnvironmentFile=-/home/ada/.config/upkeep/schedule.env',
      'StandardInput=null',
      'StandardOutput=append:/home/ada/.local/state/upkeep/logs/scheduled.ndjson',
      'StandardError=append:/home/ada/.local/state/upkeep/logs/scheduled.stderr.log',
      'Nice=10',
      'IOSchedulingClass=idle',
    ]) {
      expect(service.split('\n'), line).toContain(line);
    }
    expect(readScheduleDefinition(service)).toEqual(definition());
    expect(readScheduleDefinition(service.replace('"schemaVersion":1', '"schemaVersion":9'))).toBeNull();
    expect(readScheduleDefinition('[Service]\nExecStart=/bin/true\n')).toBeNull();
  });

  it('quotes what systemd would otherwise expand or split', () => {
    expect(quoteExecArgument('/usr/bin/node')).toBe('/usr/bin/node');
    expect(quoteExecArgument('/opt/my tools/upkeep.js')).toBe('"/opt/my tools/upkeep.js"');
    expect(quoteExecArgument('/opt/100%/x')).toBe('"/opt/100%%/x"');
    expect(quoteExecArgument('$HOME')).toBe('"$$HOME"');
    // systemd expands no variables in the program itself.
    expect(quoteExecArgument('/opt/$dir/node', { program: true })).toBe('"/opt/$dir/node"');
    expect(quoteExecArgument(';')).toBe('";"');
    expect(quoteExecArgument('say "hi"\\')).toBe('"say \\"hi\\"\\\\"');
    expect(environmentLine('HTTPS_PROXY', 'http://proxy:3128/?a=1%')).toBe('Environment="HTTPS_PROXY=http://proxy:3128/?a=1%%"');
    expect(environmentLine('NAME', 'two words "quoted"')).toBe('Environment="NAME=two words \\"quoted\\""');
    expect(() => renderServiceUnit(definition({ command: ['node', 'upkeep.js'] }))).toThrow(/absolute/);
  });

  it('carries PATH, upkeep folders, proxies and CAs that are set, and marks the run unattended', () => {
    const environment = scheduledEnvironment(
      { PATH: '/usr/local/bin:/usr/bin', HTTPS_PROXY: 'http://proxy:3128', NODE_EXTRA_CA_CERTS: '/etc/ssl/corp.pem', CARGO_HOME: '/opt/cargo', GITHUB_TOKEN: 'ghp_secret', EDITOR: 'vi', NO_PROXY: '' },
      paths,
      '/home/ada',
    );
    expect(environment).toEqual({
      PATH: '/usr/local/bin:/usr/bin',
      HOME: '/home/ada',
      UPKEEP_CONFIG_DIR: paths.config,
      UPKEEP_CACHE_DIR: paths.cache,
      UPKEEP_STATE_DIR: paths.state,
      UPKEEP_DATA_DIR: paths.data,
      HTTPS_PROXY: 'http://proxy:3128',
      NODE_EXTRA_CA_CERTS: '/etc/ssl/corp.pem',
      CARGO_HOME: '/opt/cargo',
      CI: 'true',
      UPKEEP_SCHEDULED: '1',
      NO_COLOR: '1',
    });
  });

  it('gives cron the same command, with its % escaped and the system line run as root', () => {
    const line = cronLine(definition({ environment: { PATH: '/usr/bin', LABEL: '100% sure' } }), '0 0 * * 1');
    expect(line).toBe(
      "0 0 * * 1 env PATH=/usr/bin 'LABEL=100\\% sure' /usr/bin/node /opt/upkeep/bin/upkeep.js schedule logs --rotate >/dev/null 2>&1; " +
        "env PATH=/usr/bin 'LABEL=100\\% sure' /usr/bin/node /opt/upkeep/bin/upkeep.js update run --json --continue-on-error >>/home/ada/.local/state/upkeep/logs/scheduled.ndjson 2>>/home/ada/.local/state/upkeep/logs/scheduled.stderr.log </dev/null",
    );
    expect(cronLine(definition({ scope: 'system' }), '0 4 * * *')).toMatch(/^0 4 \* \* \* root env .* schedule logs --rotate --system >\/dev\/null 2>&1; env /);
  });
});

describe('reading back', () => {
  it('splits the log into NDJSON events, pretty-printed results and plain lines', () => {
    const text = [
      '{"type":"run","runId":"r1","status":"estimating","time":"2026-01-01T00:00:00.000Z"}',
      '{"type":"summary","report":{"status":"failed","endedAt":"2026-01-01T00:01:00.000Z","summary":{"failed":["beta"]}}}',
      '{',
      '  "plugins": [',
      '    {',
      '      "name": "alpha",',
      '      "error": {"code": "X"}',
      '    }',
      '  ],',
      '  "estimate": {"seconds": 1}',
      '}',
      'node: something went wrong',
      '{"type":"phase","plugin":"alpha"',
      '',
    ].join('\n');
    const entries = parseLogText(text);
    expect(entries.map((entry) => entry.kind)).toEqual(['json', 'json', 'json', 'text', 'text']);
    expect(lastOutcome(entries.slice(0, 2))).toEqual({ kind: 'run', time: '2026-01-01T00:01:00.000Z', status: 'failed', failed: ['beta'], message: null });
    expect(lastOutcome(entries)).toEqual({ kind: 'check', time: null, status: 'checked', failed: ['alpha'], message: null });
    const error = parseLogText('{\n  "error": {\n    "code": "E_RUN_IN_PROGRESS",\n    "message": "busy"\n  }\n}\n');
    expect(lastOutcome(error)).toMatchObject({ kind: 'error', status: 'E_RUN_IN_PROGRESS', message: 'busy' });
  });

  it("reads `systemctl show` of two units, and systemd's environment files", () => {
    const shown = parseShow('Id=upkeep-update.timer\nActiveState=active\nNextElapseUSecRealtime=Mon 2026-11-23 04:00:00 UTC\n\nId=upkeep-update.service\nResult=exit-code\nExecMainStatus=3\n');
    expect(shown.get('upkeep-update.timer')).toMatchObject({ ActiveState: 'active', NextElapseUSecRealtime: 'Mon 2026-11-23 04:00:00 UTC' });
    expect(shown.get('upkeep-update.service')).toMatchObject({ Result: 'exit-code', ExecMainStatus: '3' });
    expect(parseEnvironmentFile('# tokens\nGITHUB_TOKEN=ghp_x\nexport A="b c"\n\nbroken line\nB=\'d\'\n')).toEqual({ GITHUB_TOKEN: 'ghp_x', A: 'b c', B: 'd' });
  });
});
