//! A trigger's condition: a Common Expression Language expression (parsed
//! by the `cel` crate) compiled into a small tree over the run's scalar
//! keys, so evaluating it at every update costs a few nanoseconds and no
//! allocation. Only what a condition over numbers needs is accepted:
//! numbers and booleans, arithmetic, comparisons, `&&` `||` `!`, `?:`, and
//! the functions in [`FUNCTIONS`]; anything else is refused, saying where.

use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue, operators};
use thiserror::Error;

/// The longest condition accepted, in bytes: it is parsed when a client
/// adds it, so its size is bounded before anything is.
pub const MAX_CONDITION_BYTES: usize = 1024;
/// The deepest nesting the parser follows.
const MAX_DEPTH: u16 = 32;
/// The most keys one condition reads.
pub const MAX_KEYS: usize = 32;

/// The functions a condition may call, as a user would look them up.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("isnan(x)", "x is NaN"),
    ("isinf(x)", "x is +inf or -inf"),
    ("isfinite(x)", "x is neither NaN nor infinite"),
    ("abs(x)", "|x|"),
    ("min(x, y), max(x, y)", "the smaller, the larger"),
    ("prev(key)", "the key's value before its latest change"),
    (
        "start(key)",
        "the key's first value since the trigger was added (the run's first, for one the program declares before its loop)",
    ),
    ("rises(key)", "how many updates running the key has risen"),
    ("falls(key)", "how many updates running the key has fallen"),
];

/// Why a condition was refused, with where (1-based column; 0 when the
/// parser could not say).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at column {column}: {message}")]
pub struct ConditionError {
    pub column: usize,
    pub message: String,
}

impl ConditionError {
    fn at(source: &str, near: &str, message: impl Into<String>) -> Self {
        let column = source.find(near).map_or(0, |i| i + 1);
        ConditionError {
            column,
            message: message.into(),
        }
    }
}

/// Which value of a key an expression reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Now,
    Prev,
    Start,
    Rises,
    Falls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A number-valued expression. `Key(i, _)`: the condition's i-th key.
#[derive(Debug, Clone, PartialEq)]
pub enum Num {
    Const(f64),
    Key(usize, Which),
    Neg(Box<Num>),
    Abs(Box<Num>),
    Arith(Arith, Box<Num>, Box<Num>),
    If(Box<Bool>, Box<Num>, Box<Num>),
}

/// A boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Bool {
    Const(bool),
    Cmp(Cmp, Box<Num>, Box<Num>),
    IsNan(Box<Num>),
    IsInf(Box<Num>),
    IsFinite(Box<Num>),
    And(Box<Bool>, Box<Bool>),
    Or(Box<Bool>, Box<Bool>),
    Not(Box<Bool>),
    If(Box<Bool>, Box<Bool>, Box<Bool>),
}

/// What an expression reads of one key, at one update.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeyValues {
    pub now: f64,
    pub prev: f64,
    pub start: f64,
    pub rises: u64,
    pub falls: u64,
}

impl Num {
    pub fn eval(&self, keys: &[KeyValues]) -> f64 {
        match self {
            Num::Const(x) => *x,
            Num::Key(i, which) => read(keys, u32::try_from(*i).unwrap_or(u32::MAX), *which),
            Num::Neg(a) => -a.eval(keys),
            Num::Abs(a) => a.eval(keys).abs(),
            Num::Arith(op, a, b) => arith(*op, a.eval(keys), b.eval(keys)),
            Num::If(c, a, b) => {
                if c.eval(keys) {
                    a.eval(keys)
                } else {
                    b.eval(keys)
                }
            }
        }
    }
}

impl Bool {
    pub fn eval(&self, keys: &[KeyValues]) -> bool {
        match self {
            Bool::Const(b) => *b,
            Bool::Cmp(op, a, b) => compare(*op, a.eval(keys), b.eval(keys)),
            Bool::IsNan(a) => a.eval(keys).is_nan(),
            Bool::IsInf(a) => a.eval(keys).is_infinite(),
            Bool::IsFinite(a) => a.eval(keys).is_finite(),
            Bool::And(a, b) => a.eval(keys) && b.eval(keys),
            Bool::Or(a, b) => a.eval(keys) || b.eval(keys),
            Bool::Not(a) => !a.eval(keys),
            Bool::If(c, a, b) => {
                if c.eval(keys) {
                    a.eval(keys)
                } else {
                    b.eval(keys)
                }
            }
        }
    }
}

/// One step of a [`Program`]: postfix, over a stack of numbers (a
/// boolean is 1 or 0).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Const(f64),
    /// A key's latest value: the common read, one step of its own.
    Now(u32),
    /// A key's latest value compared with a constant.
    NowCmp(u32, Cmp, f64),
    Key(u32, Which),
    Neg,
    Abs,
    Arith(Arith),
    Cmp(Cmp),
    IsNan,
    IsInf,
    IsFinite,
    Not,
    And,
    Or,
    /// Pops the condition, then the else and the then values.
    If,
}

/// A condition flattened into postfix steps, so that evaluating it at each
/// update is a loop over a few words with no pointer to chase (the tree
/// took 2-3 ns a node through its boxes).
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// Most conditions are one test of one key (`isnan(x)`, `x > 1e3`,
    /// `abs(x) < 1e-9`): those skip the loop, and its dispatch.
    simple: Option<Simple>,
    ops: Vec<Op>,
    /// The stack room it needs (at most its tree's depth, plus one).
    depth: usize,
}

impl Program {
    /// `expr` with its `Num::Key(i, _)` read as key `keys[i]` of the slice
    /// `run` is given.
    pub fn new(expr: &Bool, keys: &[usize]) -> Program {
        let mut ops = Vec::new();
        emit_bool(expr, keys, &mut ops);
        let simple = Simple::of(expr, keys);
        let (mut sp, mut depth) = (0usize, 0usize);
        for op in &ops {
            match op {
                Op::Const(_) | Op::Now(_) | Op::NowCmp(..) | Op::Key(..) => sp += 1,
                Op::Arith(_) | Op::Cmp(_) | Op::And | Op::Or => sp -= 1,
                Op::If => sp -= 2,
                _ => {}
            }
            depth = depth.max(sp);
        }
        Program { simple, ops, depth }
    }

    /// The stack room [`run_with`](Self::run_with) needs.
    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn run(&self, keys: &[KeyValues]) -> bool {
        self.run_with(keys, &mut vec![0.0; self.depth])
    }

    /// Runs on `stack` (at least [`depth`](Self::depth) long), so that
    /// evaluating at every update allocates and clears nothing.
    #[inline]
    pub fn run_with(&self, keys: &[KeyValues], stack: &mut [f64]) -> bool {
        if let Some(s) = &self.simple {
            return s.holds(keys);
        }
        if stack.len() < self.depth {
            return false;
        }
        let mut sp = 0usize;
        let truth = |b: bool| if b { 1.0 } else { 0.0 };
        for op in &self.ops {
            // Binary steps pop the right operand, then the left.
            match *op {
                Op::Const(x) => {
                    stack[sp] = x;
                    sp += 1;
                }
                Op::Now(i) => {
                    stack[sp] = keys.get(i as usize).map_or(f64::NAN, |k| k.now);
                    sp += 1;
                }
                Op::NowCmp(i, c, x) => {
                    let now = keys.get(i as usize).map_or(f64::NAN, |k| k.now);
                    stack[sp] = truth(compare(c, now, x));
                    sp += 1;
                }
                Op::Key(i, which) => {
                    stack[sp] = read(keys, i, which);
                    sp += 1;
                }
                Op::Neg => stack[sp - 1] = -stack[sp - 1],
                Op::Abs => stack[sp - 1] = stack[sp - 1].abs(),
                Op::IsNan => stack[sp - 1] = truth(stack[sp - 1].is_nan()),
                Op::IsInf => stack[sp - 1] = truth(stack[sp - 1].is_infinite()),
                Op::IsFinite => stack[sp - 1] = truth(stack[sp - 1].is_finite()),
                Op::Not => stack[sp - 1] = truth(stack[sp - 1] == 0.0),
                Op::Arith(a) => {
                    sp -= 1;
                    let (x, y) = (stack[sp - 1], stack[sp]);
                    stack[sp - 1] = arith(a, x, y);
                }
                Op::Cmp(c) => {
                    sp -= 1;
                    let (x, y) = (stack[sp - 1], stack[sp]);
                    stack[sp - 1] = truth(compare(c, x, y));
                }
                Op::And => {
                    sp -= 1;
                    stack[sp - 1] = truth(stack[sp - 1] != 0.0 && stack[sp] != 0.0);
                }
                Op::Or => {
                    sp -= 1;
                    stack[sp - 1] = truth(stack[sp - 1] != 0.0 || stack[sp] != 0.0);
                }
                Op::If => {
                    sp -= 2;
                    let (then, otherwise, c) = (stack[sp - 1], stack[sp], stack[sp + 1]);
                    stack[sp - 1] = if c != 0.0 { then } else { otherwise };
                }
            }
        }
        sp == 1 && stack[0] != 0.0
    }
}

/// What a condition reads of key `i`.
#[inline]
fn read(keys: &[KeyValues], i: u32, which: Which) -> f64 {
    match keys.get(i as usize) {
        Some(k) => match which {
            Which::Now => k.now,
            Which::Prev => k.prev,
            Which::Start => k.start,
            Which::Rises => k.rises as f64,
            Which::Falls => k.falls as f64,
        },
        None => f64::NAN,
    }
}

/// A condition that is one test of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Simple {
    IsNan(u32, Which),
    IsInf(u32, Which),
    IsFinite(u32, Which),
    /// The key's value (its absolute value if `abs`) compared with a constant.
    Cmp(u32, Which, bool, Cmp, f64),
}

impl Simple {
    fn of(e: &Bool, keys: &[usize]) -> Option<Simple> {
        let key = |n: &Num| match n {
            Num::Key(i, w) => Some((u32::try_from(*keys.get(*i)?).ok()?, *w)),
            _ => None,
        };
        let flip = |c: Cmp| match c {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            same => same,
        };
        let operand = |n: &Num| match n {
            Num::Abs(a) => key(a).map(|(i, w)| (i, w, true)),
            n => key(n).map(|(i, w)| (i, w, false)),
        };
        match e {
            Bool::IsNan(a) => key(a).map(|(i, w)| Simple::IsNan(i, w)),
            Bool::IsInf(a) => key(a).map(|(i, w)| Simple::IsInf(i, w)),
            Bool::IsFinite(a) => key(a).map(|(i, w)| Simple::IsFinite(i, w)),
            Bool::Cmp(op, a, b) => match (operand(a), &**b, &**a, operand(b)) {
                (Some((i, w, abs)), Num::Const(c), _, _) => Some(Simple::Cmp(i, w, abs, *op, *c)),
                (_, _, Num::Const(c), Some((i, w, abs))) => {
                    Some(Simple::Cmp(i, w, abs, flip(*op), *c))
                }
                _ => None,
            },
            _ => None,
        }
    }

    #[inline]
    fn holds(&self, keys: &[KeyValues]) -> bool {
        match *self {
            Simple::IsNan(i, w) => read(keys, i, w).is_nan(),
            Simple::IsInf(i, w) => read(keys, i, w).is_infinite(),
            Simple::IsFinite(i, w) => read(keys, i, w).is_finite(),
            Simple::Cmp(i, w, abs, op, c) => {
                let x = read(keys, i, w);
                compare(op, if abs { x.abs() } else { x }, c)
            }
        }
    }
}

#[inline]
fn arith(op: Arith, a: f64, b: f64) -> f64 {
    match op {
        Arith::Add => a + b,
        Arith::Sub => a - b,
        Arith::Mul => a * b,
        Arith::Div => a / b,
        Arith::Rem => a % b,
        // NaN wins: a min or max never hides one.
        Arith::Min | Arith::Max if a.is_nan() || b.is_nan() => f64::NAN,
        Arith::Min => a.min(b),
        Arith::Max => a.max(b),
    }
}

#[inline]
fn compare(op: Cmp, a: f64, b: f64) -> bool {
    match op {
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
        Cmp::Eq => a == b,
        Cmp::Ne => a != b,
    }
}

fn emit_num(n: &Num, keys: &[usize], ops: &mut Vec<Op>) {
    match n {
        Num::Const(x) => ops.push(Op::Const(*x)),
        Num::Key(i, w) => {
            let k = keys.get(*i).copied().unwrap_or(usize::MAX);
            let k = u32::try_from(k).unwrap_or(u32::MAX);
            ops.push(match w {
                Which::Now => Op::Now(k),
                w => Op::Key(k, *w),
            });
        }
        Num::Neg(a) => {
            emit_num(a, keys, ops);
            ops.push(Op::Neg);
        }
        Num::Abs(a) => {
            emit_num(a, keys, ops);
            ops.push(Op::Abs);
        }
        Num::Arith(op, a, b) => {
            emit_num(a, keys, ops);
            emit_num(b, keys, ops);
            ops.push(Op::Arith(*op));
        }
        Num::If(c, a, b) => {
            emit_num(a, keys, ops);
            emit_num(b, keys, ops);
            emit_bool(c, keys, ops);
            ops.push(Op::If);
        }
    }
}

fn emit_bool(e: &Bool, keys: &[usize], ops: &mut Vec<Op>) {
    let unary = |a: &Num, op: Op, ops: &mut Vec<Op>| {
        emit_num(a, keys, ops);
        ops.push(op);
    };
    match e {
        Bool::Const(b) => ops.push(Op::Const(if *b { 1.0 } else { 0.0 })),
        Bool::Cmp(op, a, b) => match (&**a, &**b) {
            // The usual test, one step: a key's value against a constant.
            (Num::Key(i, Which::Now), Num::Const(c)) => {
                let k = keys.get(*i).copied().unwrap_or(usize::MAX);
                ops.push(Op::NowCmp(u32::try_from(k).unwrap_or(u32::MAX), *op, *c));
            }
            _ => {
                emit_num(a, keys, ops);
                emit_num(b, keys, ops);
                ops.push(Op::Cmp(*op));
            }
        },
        Bool::IsNan(a) => unary(a, Op::IsNan, ops),
        Bool::IsInf(a) => unary(a, Op::IsInf, ops),
        Bool::IsFinite(a) => unary(a, Op::IsFinite, ops),
        Bool::And(a, b) | Bool::Or(a, b) => {
            emit_bool(a, keys, ops);
            emit_bool(b, keys, ops);
            ops.push(if matches!(e, Bool::And(..)) {
                Op::And
            } else {
                Op::Or
            });
        }
        Bool::Not(a) => {
            emit_bool(a, keys, ops);
            ops.push(Op::Not);
        }
        Bool::If(c, a, b) => {
            emit_bool(a, keys, ops);
            emit_bool(b, keys, ops);
            emit_bool(c, keys, ops);
            ops.push(Op::If);
        }
    }
}

/// A condition, compiled: the keys it reads (in the order `Num::Key`
/// numbers them) and its expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub source: String,
    pub keys: Vec<String>,
    /// `history[i]`: the condition reads more of key i than its latest
    /// value (`prev`, `start`, `rises`, `falls`).
    pub history: Vec<bool>,
    pub expr: Bool,
}

impl Condition {
    /// Parses and compiles `source`; a refusal says where it is wrong.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        if source.len() > MAX_CONDITION_BYTES {
            return Err(ConditionError {
                column: MAX_CONDITION_BYTES,
                message: format!(
                    "a condition is at most {MAX_CONDITION_BYTES} bytes (this one is {})",
                    source.len()
                ),
            });
        }
        if source.trim().is_empty() {
            return Err(ConditionError {
                column: 1,
                message: "the condition is empty".into(),
            });
        }
        let parsed = parse_on_a_big_stack(source)?;
        let mut c = Compiler {
            source,
            keys: Vec::new(),
            history: Vec::new(),
            depth: 0,
            nodes: 0,
        };
        let expr = c.boolean(&parsed)?;
        Ok(Condition {
            source: source.to_string(),
            keys: c.keys,
            history: c.history,
            expr,
        })
    }
}

/// The parser (ANTLR's, recursive descent through every precedence level)
/// needs megabytes of stack for a few dozen nested parentheses, more than
/// a server task's thread has: it runs on a thread of its own, its nesting
/// bounded too.
fn parse_on_a_big_stack(source: &str) -> Result<IdedExpr, ConditionError> {
    const STACK_BYTES: usize = 64 << 20;
    let parse = || {
        cel::parser::Parser::new()
            .max_recursion_depth(MAX_DEPTH)
            .parse(source)
            .map_err(|e| match e.errors.first() {
                Some(first) if first.msg.contains("Recursion limit") => ConditionError {
                    column: 0,
                    message: format!("nested too deeply: at most {MAX_DEPTH} levels"),
                },
                Some(first) => ConditionError {
                    // The parser's column counts from 1, as ours do.
                    column: usize::try_from(first.pos.1).unwrap_or(0),
                    message: plain_syntax_error(&first.msg),
                },
                None => ConditionError {
                    column: 0,
                    message: "not an expression".into(),
                },
            })
    };
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("idict-condition".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, parse)
            .map_err(|e| ConditionError {
                column: 0,
                message: format!("could not start the parser: {e}"),
            })?;
        parser.join().unwrap_or_else(|_| {
            Err(ConditionError {
                column: 0,
                message: "the parser failed on this condition".into(),
            })
        })
    })
}

/// ANTLR's message in a user's words: what was found, without the list of
/// every token it could have been.
fn plain_syntax_error(msg: &str) -> String {
    let msg = msg.strip_prefix("Syntax error: ").unwrap_or(msg);
    let quoted = |rest: &str| {
        rest.split(" expecting")
            .next()
            .unwrap_or(rest)
            .trim()
            .to_string()
    };
    if msg.starts_with("mismatched input '<EOF>'") || msg.starts_with("extraneous input '<EOF>'") {
        "the condition ends too soon".into()
    } else if let Some(rest) = msg
        .strip_prefix("extraneous input ")
        .or_else(|| msg.strip_prefix("mismatched input "))
    {
        format!("unexpected {}", quoted(rest))
    } else if let Some(rest) = msg.strip_prefix("missing ") {
        format!("missing {}", rest.split(" at ").next().unwrap_or(rest))
    } else if let Some(rest) = msg.strip_prefix("token recognition error at: ") {
        format!("unexpected character {rest}")
    } else {
        msg.to_string()
    }
}

/// The deepest compiled tree and the most nodes a condition has: each
/// update evaluates it, recursively, on the run's own thread.
const MAX_TREE_DEPTH: usize = 64;
const MAX_NODES: usize = 512;

struct Compiler<'a> {
    source: &'a str,
    keys: Vec<String>,
    history: Vec<bool>,
    depth: usize,
    nodes: usize,
}

/// What an expression is, before it is known to be a number or a boolean.
enum Typed {
    Num(Num),
    Bool(Bool),
}

impl Compiler<'_> {
    fn error(&self, near: &str, message: impl Into<String>) -> ConditionError {
        ConditionError::at(self.source, near, message)
    }

    fn key(&mut self, name: &str) -> Result<usize, ConditionError> {
        if let Some(i) = self.keys.iter().position(|k| k == name) {
            return Ok(i);
        }
        if self.keys.len() == MAX_KEYS {
            return Err(self.error(name, format!("a condition reads at most {MAX_KEYS} keys")));
        }
        self.keys.push(name.to_string());
        self.history.push(false);
        Ok(self.keys.len() - 1)
    }

    fn boolean(&mut self, e: &IdedExpr) -> Result<Bool, ConditionError> {
        match self.any(e)? {
            Typed::Bool(b) => Ok(b),
            Typed::Num(_) => Err(self.error(
                first_word(e),
                "this is a number where a condition (true or false) is needed: compare it, e.g. `x > 0`",
            )),
        }
    }

    fn number(&mut self, e: &IdedExpr) -> Result<Num, ConditionError> {
        match self.any(e)? {
            Typed::Num(n) => Ok(n),
            Typed::Bool(_) => Err(self.error(
                first_word(e),
                "this is true or false where a number is needed",
            )),
        }
    }

    /// A key's name: an identifier, or a dotted one (`stats.mean`).
    fn key_name(e: &IdedExpr) -> Option<String> {
        match &e.expr {
            Expr::Ident(name) => Some(name.clone()),
            Expr::Select(s) if !s.test => {
                Self::key_name(&s.operand).map(|base| format!("{base}.{}", s.field))
            }
            _ => None,
        }
    }

    fn any(&mut self, e: &IdedExpr) -> Result<Typed, ConditionError> {
        self.nodes += 1;
        if self.depth >= MAX_TREE_DEPTH || self.nodes > MAX_NODES {
            return Err(self.error(
                first_word(e),
                format!("too big: at most {MAX_NODES} terms, nested at most {MAX_TREE_DEPTH} deep"),
            ));
        }
        self.depth += 1;
        let typed = self.any_inner(e);
        self.depth -= 1;
        typed
    }

    fn any_inner(&mut self, e: &IdedExpr) -> Result<Typed, ConditionError> {
        match &e.expr {
            Expr::Literal(LiteralValue::Double(x)) => Ok(Typed::Num(Num::Const(*x.inner()))),
            Expr::Literal(LiteralValue::Int(x)) => Ok(Typed::Num(Num::Const(*x.inner() as f64))),
            Expr::Literal(LiteralValue::UInt(x)) => {
                Ok(Typed::Num(Num::Const(*x.inner() as f64)))
            }
            Expr::Literal(LiteralValue::Boolean(b)) => Ok(Typed::Bool(Bool::Const(*b.inner()))),
            Expr::Ident(name) if name == "nan" || name == "NaN" => {
                Ok(Typed::Num(Num::Const(f64::NAN)))
            }
            Expr::Ident(name) if name == "inf" => Ok(Typed::Num(Num::Const(f64::INFINITY))),
            Expr::Ident(_) | Expr::Select(_) => match Self::key_name(e) {
                Some(name) => Ok(Typed::Num(Num::Key(self.key(&name)?, Which::Now))),
                None => Err(self.error(first_word(e), "not a key's name")),
            },
            Expr::Call(call) => self.call(call),
            Expr::Literal(LiteralValue::String(s)) => Err(self.error(
                s.inner(),
                "a condition reads numbers: strings are not compared",
            )),
            _ => Err(self.error(
                first_word(e),
                "only numbers, keys, arithmetic, comparisons and the trigger functions are understood here",
            )),
        }
    }

    fn call(&mut self, call: &CallExpr) -> Result<Typed, ConditionError> {
        let name = call.func_name.as_str();
        if let Some(target) = &call.target {
            return Err(self.error(
                first_word(target),
                format!("`.{name}()` is not understood: call it as `{name}(...)`"),
            ));
        }
        let args = &call.args;
        let arity = |n: usize, c: &Self| -> Result<(), ConditionError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(c.error(
                    name,
                    format!("{name} takes {n} argument(s), not {}", args.len()),
                ))
            }
        };
        let arith = |c: &mut Self, op: Arith| -> Result<Typed, ConditionError> {
            arity(2, c)?;
            Ok(Typed::Num(
                match (c.number(&args[0])?, c.number(&args[1])?) {
                    // Constants folded: `2 * 1e6` is computed once, here.
                    (Num::Const(a), Num::Const(b)) => Num::Const(arith(op, a, b)),
                    (a, b) => Num::Arith(op, Box::new(a), Box::new(b)),
                },
            ))
        };
        let cmp = |c: &mut Self, op: Cmp| -> Result<Typed, ConditionError> {
            arity(2, c)?;
            Ok(Typed::Bool(Bool::Cmp(
                op,
                Box::new(c.number(&args[0])?),
                Box::new(c.number(&args[1])?),
            )))
        };
        let of_key = |c: &mut Self, which: Which| -> Result<Typed, ConditionError> {
            arity(1, c)?;
            match Self::key_name(&args[0]) {
                Some(key) => {
                    let i = c.key(&key)?;
                    c.history[i] = true;
                    Ok(Typed::Num(Num::Key(i, which)))
                }
                None => Err(c.error(
                    name,
                    format!("{name}() takes a key's name, e.g. {name}(energy)"),
                )),
            }
        };
        match name {
            operators::ADD => arith(self, Arith::Add),
            operators::SUBSTRACT => arith(self, Arith::Sub),
            operators::MULTIPLY => arith(self, Arith::Mul),
            operators::DIVIDE => arith(self, Arith::Div),
            operators::MODULO => arith(self, Arith::Rem),
            "min" => arith(self, Arith::Min),
            "max" => arith(self, Arith::Max),
            operators::LESS => cmp(self, Cmp::Lt),
            operators::LESS_EQUALS => cmp(self, Cmp::Le),
            operators::GREATER => cmp(self, Cmp::Gt),
            operators::GREATER_EQUALS => cmp(self, Cmp::Ge),
            operators::EQUALS => cmp(self, Cmp::Eq),
            operators::NOT_EQUALS => cmp(self, Cmp::Ne),
            operators::NEGATE => {
                arity(1, self)?;
                Ok(Typed::Num(match self.number(&args[0])? {
                    // `-1e300` is a constant, folded here.
                    Num::Const(x) => Num::Const(-x),
                    n => Num::Neg(Box::new(n)),
                }))
            }
            "abs" => {
                arity(1, self)?;
                Ok(Typed::Num(Num::Abs(Box::new(self.number(&args[0])?))))
            }
            "isnan" => {
                arity(1, self)?;
                Ok(Typed::Bool(Bool::IsNan(Box::new(self.number(&args[0])?))))
            }
            "isinf" => {
                arity(1, self)?;
                Ok(Typed::Bool(Bool::IsInf(Box::new(self.number(&args[0])?))))
            }
            "isfinite" => {
                arity(1, self)?;
                Ok(Typed::Bool(Bool::IsFinite(Box::new(
                    self.number(&args[0])?,
                ))))
            }
            "prev" => of_key(self, Which::Prev),
            "start" => of_key(self, Which::Start),
            "rises" => of_key(self, Which::Rises),
            "falls" => of_key(self, Which::Falls),
            operators::LOGICAL_AND | operators::LOGICAL_OR => {
                arity(2, self)?;
                let (l, r) = (
                    Box::new(self.boolean(&args[0])?),
                    Box::new(self.boolean(&args[1])?),
                );
                Ok(Typed::Bool(if name == operators::LOGICAL_AND {
                    Bool::And(l, r)
                } else {
                    Bool::Or(l, r)
                }))
            }
            operators::LOGICAL_NOT => {
                arity(1, self)?;
                Ok(Typed::Bool(Bool::Not(Box::new(self.boolean(&args[0])?))))
            }
            operators::CONDITIONAL => {
                arity(3, self)?;
                let c = Box::new(self.boolean(&args[0])?);
                match (self.any(&args[1])?, self.any(&args[2])?) {
                    (Typed::Num(x), Typed::Num(y)) => {
                        Ok(Typed::Num(Num::If(c, Box::new(x), Box::new(y))))
                    }
                    (Typed::Bool(x), Typed::Bool(y)) => {
                        Ok(Typed::Bool(Bool::If(c, Box::new(x), Box::new(y))))
                    }
                    _ => Err(self.error(
                        "?",
                        "both sides of `? :` must be numbers, or both true or false",
                    )),
                }
            }
            _ => {
                let shown = name.trim_matches('_').trim_start_matches('@');
                let known: Vec<&str> = FUNCTIONS.iter().map(|(f, _)| *f).collect();
                Err(self.error(
                    shown,
                    format!(
                        "`{shown}` is not understood here; the functions are {}",
                        known.join(", ")
                    ),
                ))
            }
        }
    }
}

/// Something of `e` to find in the source, to say where it is.
fn first_word(e: &IdedExpr) -> &str {
    match &e.expr {
        Expr::Ident(name) => name,
        Expr::Select(s) => first_word(&s.operand),
        Expr::Call(c) => match (c.target.as_deref(), c.args.first()) {
            (Some(t), _) => first_word(t),
            (None, Some(a)) if c.func_name.starts_with('_') || c.func_name.ends_with('_') => {
                first_word(a)
            }
            _ => c.func_name.as_str(),
        },
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(source: &str, keys: &[KeyValues]) -> bool {
        match Condition::parse(source) {
            Ok(c) => c.expr.eval(keys),
            Err(e) => panic!("{source}: {e}"),
        }
    }

    fn now(x: f64) -> KeyValues {
        KeyValues {
            now: x,
            ..KeyValues::default()
        }
    }

    #[test]
    fn the_flat_program_agrees_with_the_tree() {
        let vals = [
            KeyValues {
                now: 2.0,
                prev: 1.0,
                start: 0.5,
                rises: 3,
                falls: 0,
            },
            KeyValues {
                now: f64::NAN,
                prev: 4.0,
                start: 1.0,
                rises: 0,
                falls: 2,
            },
            KeyValues {
                now: -3.0,
                prev: f64::INFINITY,
                start: -1.0,
                rises: 0,
                falls: 1,
            },
        ];
        for source in [
            "a > prev(a) && start(a) < 1",
            "isnan(b) || a / 0 > 1",
            "!(a > 1) ? isinf(prev(c)) : c < -2 && rises(a) == 3",
            "max(a, b) > 0",
            "min(a, c) == -3 && abs(c) % 2 == 1",
            "(a > 1 ? a : c) * 2 == 4 && falls(b) >= 2",
            "-a + 5 == 3 && isfinite(c)",
            "isnan(b)",
            "isinf(prev(c))",
            "isfinite(a)",
            "abs(c) >= 3",
            "1 < a",
            "rises(a) == 3",
            "start(c) != -1",
            "a > 1 && c < -2 * 1",
            "c == -3 || b > 0",
        ] {
            let c = Condition::parse(source).unwrap_or_else(|e| panic!("{source}: {e}"));
            let order: Vec<usize> = c
                .keys
                .iter()
                .map(|k| ["a", "b", "c"].iter().position(|n| n == k).unwrap_or(9))
                .collect();
            let tree_vals: Vec<KeyValues> = order.iter().map(|&i| vals[i]).collect();
            let program = Program::new(&c.expr, &order);
            assert_eq!(program.run(&vals), c.expr.eval(&tree_vals), "{source}");
        }
    }

    #[test]
    fn conditions_a_user_writes() {
        assert!(eval("isnan(residual)", &[now(f64::NAN)]));
        assert!(!eval("isnan(residual)", &[now(1.0)]));
        let energy = KeyValues {
            now: 2.5,
            start: 1.0,
            ..KeyValues::default()
        };
        assert!(eval("energy > 2 * start(energy)", &[energy]));
        let rising = KeyValues {
            now: 1.0,
            rises: 10,
            ..KeyValues::default()
        };
        assert!(eval("rises(residual) >= 10", &[rising]));
        assert!(eval("abs(x) < 1e-6 || !isfinite(x)", &[now(f64::INFINITY)]));
        assert!(eval("x > 0 ? true : false", &[now(1.0)]));
        assert!(eval("dt < 1e-9 && step > 100", &[now(1e-12), now(200.0)]));
        assert!(eval("max(a, b) - min(a, b) > 1.5", &[now(1.0), now(3.0)]));
        let c = Condition::parse("stats.mean > prev(stats.mean)").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.keys, ["stats.mean"]);
    }

    #[test]
    fn a_malformed_condition_is_refused_saying_where() {
        let e = Condition::parse("residual > ").unwrap_err();
        assert_eq!(
            (e.column, e.message.as_str()),
            (12, "the condition ends too soon")
        );
        let e = Condition::parse("residual >> 3").unwrap_err();
        assert_eq!(
            (e.column, e.message.as_str()),
            (11, "unexpected '>'"),
            "{e}"
        );
        let e = Condition::parse("(x > 1").unwrap_err();
        assert_eq!(e.message, "missing ')'");
        let e = Condition::parse("isnan(residual) && frobnicate(x)").unwrap_err();
        assert_eq!(e.column, 20, "{e}");
        assert!(e.message.contains("frobnicate"), "{e}");
        let e = Condition::parse("residual + 1").unwrap_err();
        assert!(e.message.contains("number where a condition"), "{e}");
        let e = Condition::parse("name == 'heat'").unwrap_err();
        assert!(e.message.contains("strings"), "{e}");
        assert_eq!(e.column, 10, "{e}");
        let e = Condition::parse(&"x+".repeat(1000)).unwrap_err();
        assert!(e.message.contains("at most"), "{e}");
        // Nesting is bounded; checking it costs no stack overflow (on a
        // test thread's 2 MiB, where the parser once overflowed at 16).
        for n in [16, 32, 200] {
            let deep = format!("{}x{} > 0", "(".repeat(n), ")".repeat(n));
            assert_eq!(Condition::parse(&deep).is_ok(), n <= 32, "{n} levels");
        }
        let e = Condition::parse(&format!("{}x > 0", "x+".repeat(300))).unwrap_err();
        assert!(e.message.contains("too big"), "{e}");
        assert!(Condition::parse(&format!("{}x > 0", "x+".repeat(50))).is_ok());
    }
}
