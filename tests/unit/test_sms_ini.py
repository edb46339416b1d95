"""sms_ini: byte-preserving reading and writing of SMS.INI and copy lists."""

import pytest

import sms_testlib as lab
from ansible.module_utils.sms_ini import IniDocument, IniError

RICH = (b"; header \xe9\xff latin-1 bytes\r\n"
        b"[SMS]\r\n"
        b"  CopyListVersion = 41  \r\n"
        b"Key=value=with=equals\r\n"
        b"\r\n"
        b"[servers]\r\n"
        b"Current_Logon_Server=\\\\LOGON01\\SMS_SHR\r\n"
        b"# hash comment\r\n"
        b"[Unknown]\r\n"
        b"Empty=\r\n"
        b"Tail=no final newline")


def test_round_trip_is_byte_identical():
    for data in (RICH, lab.sms_ini(), b"", b"[A]\nunix=lf\n", b"[A]\r\nmixed=1\nlines=2\r\n"):
        assert IniDocument.parse(data).to_bytes() == data


def test_get_is_case_insensitive_and_keeps_value_text():
    doc = IniDocument.parse(RICH)
    assert doc.get("sms", "copylistversion") == "41"
    assert doc.get("SERVERS", "current_logon_server") == "\\\\LOGON01\\SMS_SHR"
    assert doc.get("SMS", "Key") == "value=with=equals"
    assert doc.get("Unknown", "Empty") == ""
    assert doc.get("SMS", "Missing", "dflt") == "dflt"
    assert doc.find_key("CURRENT_LOGON_SERVER") == "\\\\LOGON01\\SMS_SHR"
    assert doc.sections() == ["SMS", "servers", "Unknown"]


def test_set_changes_only_the_value():
    doc = IniDocument.parse(RICH)
    assert doc.set("SMS", "CopyListVersion", "42") is True
    assert doc.to_bytes() == RICH.replace(b"CopyListVersion = 41  ", b"CopyListVersion = 42  ")
    assert doc.set("sms", "copylistversion", "42") is False


def test_set_value_at_end_without_newline():
    doc = IniDocument.parse(RICH)
    doc.set("Unknown", "Tail", "changed")
    assert doc.to_bytes() == RICH.replace(b"Tail=no final newline", b"Tail=changed")


def test_insert_missing_key_after_the_sections_last_key_with_crlf():
    doc = IniDocument.parse(lab.sms_ini())
    assert doc.set("Servers", "Logon_Server_List", "LOGON01") is True
    out = doc.to_bytes()
    assert b"Current_Logon_Server=\\\\LOGON01\\SMS_SHR\r\nLogon_Server_List=LOGON01\r\n[Local]\r\n" in out
    assert out.replace(b"Logon_Server_List=LOGON01\r\n", b"") == lab.sms_ini()


def test_insert_key_into_a_last_section_without_final_newline():
    doc = IniDocument.parse(RICH)
    doc.set("Unknown", "New", "1")
    assert doc.to_bytes() == RICH + b"\r\nNew=1\r\n"


def test_insert_missing_section_at_the_end_with_crlf():
    doc = IniDocument.parse(lab.sms_ini())
    doc.set("Local2", "SetupPhase", "installed")
    assert doc.to_bytes() == lab.sms_ini() + b"[Local2]\r\nSetupPhase=installed\r\n"
    doc = IniDocument.parse(RICH)
    doc.set("Local", "SetupPhase", "installed")
    assert doc.to_bytes() == RICH + b"\r\n[Local]\r\nSetupPhase=installed\r\n"


def test_lf_file_keeps_lf():
    doc = IniDocument.parse(b"[A]\nx=1\n")
    doc.set("B", "y", "2")
    assert doc.to_bytes() == b"[A]\nx=1\n[B]\ny=2\n"


@pytest.mark.parametrize("data, line, words", [
    (b"[SMS]\r\nCopyListVersion=41\r\nthis is not ini\r\n", 3, "not a [section]"),
    (b"; comment\r\nKey=outside\r\n[SMS]\r\n", 2, "outside any [section]"),
    (b"[SMS]\r\n[Broken\r\n", 2, "not a [section]"),
])
def test_malformed_lines_are_named(data, line, words):
    with pytest.raises(IniError) as info:
        IniDocument.parse(data, name="C:/SMS.INI")
    assert info.value.line == line
    assert "C:/SMS.INI line %d" % line in info.value.msg and words in info.value.msg


def test_nul_bytes_are_refused():
    with pytest.raises(IniError, match="NUL"):
        IniDocument.parse(b"[SMS]\r\n\x00\x00\r\n")
