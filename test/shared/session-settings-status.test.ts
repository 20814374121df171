/**
 * shared/session-settings.ts: what a server ParameterStatus after startup may say, and the
 * settings reviewed and left to clients (each must stay out of the gateway's hands).
 */
import { describe, expect, it } from 'vitest';
import {
  CLIENT_SETTINGS_REVIEWED,
  GATEWAY_OWNED_SETTINGS,
  gatewayOwnedReason,
  parameterStatusBreach,
} from '../../shared/session-settings.ts';

describe('parameterStatusBreach', () => {
  it.each([
    ['client_encoding', 'SJIS'],
    ['client_encoding', 'SQL_ASCII'],
    ['client_encoding', 'LATIN1'],
    ['standard_conforming_strings', 'off'],
    ['session_authorization', 'postgres'],
    ['is_superuser', 'on'],
    ['is_superuser', 'off'],
  ])('%s=%s ends the session', (name, value) => {
    expect(parameterStatusBreach(name, value, 'app_rw')).toMatch(new RegExp(`${name}=${value}`));
  });

  it.each([
    ['client_encoding', 'UTF8'],
    ['standard_conforming_strings', 'on'],
    ['session_authorization', 'app_rw'],
    ['search_path', 'other, public'],
    ['DateStyle', 'German, DMY'],
    ['application_name', 'psql'],
    ['TimeZone', 'UTC'],
  ])('%s=%s is fine', (name, value) => {
    expect(parameterStatusBreach(name, value, 'app_rw')).toBeUndefined();
  });

  it('a session_authorization report without a known login ends the session', () => {
    expect(parameterStatusBreach('session_authorization', 'app_rw', undefined)).toBeDefined();
  });
});

describe('settings reviewed and left to the client', () => {
  it.each(Object.keys(CLIENT_SETTINGS_REVIEWED))('%s is not owned by the gateway', (name) => {
    expect(gatewayOwnedReason(name)).toBeUndefined();
    expect(Object.hasOwn(GATEWAY_OWNED_SETTINGS, name)).toBe(false);
  });

  it('covers the settings that change lexing or name resolution and are not owned', () => {
    expect(Object.keys(CLIENT_SETTINGS_REVIEWED)).toEqual(
      expect.arrayContaining([
        'search_path',
        'escape_string_warning',
        'array_nulls',
        'default_text_search_config',
        'datestyle',
        'session_replication_role',
        'row_security',
      ]),
    );
  });
});
