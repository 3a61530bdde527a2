//! Client library for utraced. It arrives with issue 3.
