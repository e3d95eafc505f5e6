"""The demo MCP server, built on the official SDK: a calculator and lookups in a small built-in table of
customers and invoices. ``seed_demo`` connects the demo organization to it; ``run.sh`` starts it as its
own process::

    python -m leancore.demo_mcp --port 8765      # streamable HTTP at http://127.0.0.1:8765/mcp

The tool names and arguments suit the offline ``local`` model, which calls a tool whose name the
message says, with the ``key=value`` pairs it gives: ``calculate expression="1250 * 12"``,
``lookup_customer name=Initech``, ``lookup_invoice invoice_id=INV-1002``."""

from __future__ import annotations

import argparse
import ast
import operator
import re
from collections.abc import Callable
from decimal import Decimal

import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

DEFAULT_PORT = 8765
NAME = "leancore-demo"

CUSTOMERS = [
    {"name": "Initech", "plan": "Business", "city": "Austin", "contact": "Bill Lumbergh", "open_invoices": 1},
    {"name": "Globex", "plan": "Enterprise", "city": "Springfield", "contact": "Hank Scorpio", "open_invoices": 0},
    {"name": "Umbrella", "plan": "Starter", "city": "Raccoon City", "contact": "Albert Wesker", "open_invoices": 2},
    {"name": "Hooli", "plan": "Enterprise", "city": "Palo Alto", "contact": "Gavin Belson", "open_invoices": 0},
]
INVOICES = [
    {"id": "INV-1001", "customer": "Globex", "amount": "12400.00", "currency": "EUR", "status": "paid"},
    {"id": "INV-1002", "customer": "Initech", "amount": "3150.50", "currency": "EUR", "status": "open"},
    {"id": "INV-1003", "customer": "Umbrella", "amount": "980.00", "currency": "EUR", "status": "overdue"},
    {"id": "INV-1004", "customer": "Umbrella", "amount": "1725.25", "currency": "EUR", "status": "open"},
]

# --- a calculator without eval: the expression's syntax tree, arithmetic nodes only ---------------

_BINARY: dict[type[ast.operator], Callable[[Decimal, Decimal], Decimal]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Decimal], Decimal]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPRESSION = 200
MAX_EXPONENT = 100
ARITHMETIC = re.compile(r"[\d.(][\d\s.+\-*/%()^]*")


class CalculationError(ValueError):
    pass


def _value(node: ast.AST) -> Decimal:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return Decimal(str(node.value))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculationError("That exponent is too large.")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    raise CalculationError("Only numbers, + - * / // % ** and parentheses are allowed.")


def evaluate(expression: str) -> Decimal:
    """The value of an arithmetic expression (``^`` also means power). Raises CalculationError."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text or len(text) > MAX_EXPRESSION:
        raise CalculationError(f"Give an arithmetic expression of at most {MAX_EXPRESSION} characters.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"Not an arithmetic expression: {expression!r}.") from exc
    try:
        return _value(tree.body)
    except ArithmeticError as exc:  # decimal's DivisionByZero, InvalidOperation, Overflow
        raise CalculationError("Division by zero, an undefined result or a number too large.") from exc


def _arithmetic_in(text: str) -> str:
    """The longest arithmetic part of a sentence (``please calculate 2 + 3 for me`` → ``2 + 3``)."""
    candidates = [
        found
        for found in (m.group(0).strip() for m in ARITHMETIC.finditer(text))
        if any(c.isdigit() for c in found) and any(c in "+-*/%^" for c in found)
    ]
    return max(candidates, key=len, default="")


def _number(value: Decimal) -> str:
    if value.as_tuple().exponent < -10 and abs(value) < 10**17:  # type: ignore[operator]  # an int for a finite number
        value = value.quantize(Decimal("1e-10"))
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly (decimal arithmetic): numbers, + - * / // % ** (or ^)
    and parentheses, e.g. "1250 * 12 * 1.08"."""
    try:
        value = evaluate(expression)
    except CalculationError:
        inner = _arithmetic_in(expression)
        if not inner or inner == expression.strip():
            raise
        expression, value = inner, evaluate(inner)
    return f"{expression.strip()} = {_number(value)}"


# --- lookups in the demo data ------------------------------------------------------------------------


def _find_customer(name: str) -> dict[str, object] | None:
    wanted = name.strip().lower()
    for customer in CUSTOMERS:
        if str(customer["name"]).lower() == wanted:
            return customer
    for customer in CUSTOMERS:  # a sentence that names one
        if re.search(rf"\b{re.escape(str(customer['name']).lower())}\b", wanted):
            return customer
    return None


def lookup_customer(name: str) -> str:
    """Look up a customer of the demo company by name (Initech, Globex, Umbrella or Hooli): plan, city,
    contact and open invoices."""
    customer = _find_customer(name)
    if customer is None:
        known = ", ".join(str(c["name"]) for c in CUSTOMERS)
        return f"No customer called {name.strip()!r}. Known customers: {known}."
    invoices = [i["id"] for i in INVOICES if i["customer"] == customer["name"] and i["status"] != "paid"]
    return (
        f"{customer['name']}: {customer['plan']} plan, {customer['city']}, contact {customer['contact']}; "
        f"{len(invoices)} unpaid invoice(s){': ' + ', '.join(invoices) if invoices else ''}."
    )


def lookup_invoice(invoice_id: str) -> str:
    """Look up an invoice of the demo company by its id (INV-1001 … INV-1004): customer, amount and status."""
    match = re.search(r"INV-?\s*(\d+)", invoice_id, re.IGNORECASE) or re.search(r"(\d+)", invoice_id)
    wanted = f"INV-{match.group(1)}" if match else invoice_id.strip().upper()
    for invoice in INVOICES:
        if invoice["id"] == wanted:
            amount = f"{invoice['amount']} {invoice['currency']}"
            return f"{invoice['id']}: {invoice['customer']}, {amount}, {invoice['status']}."
    return f"No invoice {wanted}. Known invoices: {', '.join(i['id'] for i in INVOICES)}."


TOOLS = (calculate, lookup_customer, lookup_invoice)


def build_server() -> MCPServer:
    server = MCPServer(
        name=NAME,
        instructions="Demo tools of LeanCore: a calculator and the demo company's data.",
        log_level="WARNING",
    )
    for tool in TOOLS:
        server.add_tool(tool)
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m leancore.demo_mcp", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"Port (default {DEFAULT_PORT}).")
    args = parser.parse_args(argv)
    # the SDK's DNS-rebinding guard: only requests that name this server on loopback
    security = TransportSecuritySettings(
        allowed_hosts=[f"127.0.0.1:{args.port}", f"localhost:{args.port}", f"{args.host}:{args.port}"],
        allowed_origins=[f"http://127.0.0.1:{args.port}", f"http://localhost:{args.port}"],
    )
    app = build_server().streamable_http_app(transport_security=security)
    print(f"LeanCore demo MCP server on http://{args.host}:{args.port}/mcp", flush=True)  # noqa: T201
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
